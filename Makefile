# Tradebot: `make run` (the dev environment), `make test` (the test suite) and `make lint`.
# run and test set up what they need: the venv, pinned requirements, PostgreSQL and Redis.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
REQS   := requirements/base.txt requirements/dev.txt requirements/embedded.txt

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench stop services clean-var

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt -r requirements/embedded.txt
	@touch $(STAMP)

venv: $(STAMP) ## create the venv and install the pinned requirements

run: venv ## the dev environment: services, migrate, admin, web + workers + beat + engine
	ENVIRONMENT=dev $(PY) scripts/services.py run -- $(PY) scripts/dev.py

test: venv ## the test suite against real PostgreSQL and Redis (PYTEST_ARGS=... to narrow)
	ENVIRONMENT=test $(PY) scripts/services.py test -- $(PY) -m pytest $(PYTEST_ARGS)

lint: venv ## ruff check, ruff format --check, import contracts (.importlinter), mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

WITH_SERVICES := ENVIRONMENT=test $(PY) scripts/services.py test --

bench: venv ## benchmarks (figures printed, compared with a baseline in the same run; BENCH=name for one)
ifdef BENCH
	$(WITH_SERVICES) $(PY) bench/$(BENCH).py
else
	$(PY) bench/backtest.py
	$(PY) bench/risk_check.py
	$(PY) bench/ml.py
	$(WITH_SERVICES) $(PY) bench/decision_latency.py
	$(WITH_SERVICES) $(PY) bench/kill_switch.py
	$(WITH_SERVICES) $(PY) bench/ws_fanout.py
	$(WITH_SERVICES) $(PY) bench/backup.py
	$(WITH_SERVICES) $(PY) bench/reconcile.py
	$(WITH_SERVICES) $(PY) bench/order_path.py
	$(WITH_SERVICES) $(PY) bench/metrics_scrape.py
endif

stop: ## stop the embedded PostgreSQL and Redis started by make run / make test
	@test -x $(PY) && $(PY) scripts/services.py stop || true

clean-var: stop ## delete the embedded servers' data and dev state in var/
	rm -rf var
