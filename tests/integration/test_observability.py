"""Observability end to end: a real Celery worker records task latency and its CPU/RSS in
Redis, the web process's /metrics reports them; a real Prometheus scrapes the app (uvicorn on
loopback, the test database) and node-exporter, and every target of every Grafana dashboard
is run against Prometheus's HTTP API and must return data.

Needs the Debian packages prometheus and prometheus-node-exporter (skipped naming them
outside CI, required under CI).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics_store
from apps.core.queues import CeleryQueue
from tests.integration.conftest import database_url, redis_url, wait_for
from tests.loopback import binary, free_port, http_get, server
from tests.ops.observability_data import observability_data_create

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "config" / "grafana" / "dashboards"
# Metrics whose panels must parse but may have no data yet (none left: the broker
# metrics are exposed by apps.brokers.metrics).
LATER: tuple[str, ...] = ()
# What Grafana substitutes before it sends a query.
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "15s", "$account": ".*"}
# /metrics wants a bearer token; Prometheus sends it from a credentials file, as in
# config/prometheus/prometheus.yml (whose trading-core job's authorization is reused here).
METRICS_TOKEN = "observability-scrape-token-0123456789"  # noqa: S105


def _clear_metrics() -> None:
    conn = metrics_store.client()
    keys = list(conn.scan_iter(f"{metrics_store.PREFIX}:*"))
    if keys:
        conn.delete(*keys)


def _send_tasks(n: int) -> None:
    from tradebot.celery import app

    for i in range(n):
        app.send_task("celery.accumulate", args=[i], queue=CeleryQueue.EXECUTION.value)


def _families(client) -> dict:
    body = client.get("/metrics").content.decode()
    return {f.name: f for f in text_string_to_metric_families(body)}


def _sample(family, suffix: str, **labels: str) -> float | None:
    for s in family.samples:
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_worker_when_tasks_run_then_web_scrape_has_their_latency_and_the_worker_process(
    worker, client
) -> None:
    # Arrange
    _clear_metrics()
    labels = {"task": "celery.accumulate", "queue": "execution"}

    # Act: five tasks through Redis into the worker subprocess
    _send_tasks(5)

    # Assert: the web process (this one) reads what the worker process recorded
    def done() -> dict | None:
        families = _families(client)
        count = _sample(families["celery_tasks"], "_total", state="success", **labels)
        return families if count == 5 else None

    families = wait_for(done, timeout=20, what="5 tasks recorded", worker=worker)
    for name in ("celery_task_wait_seconds", "celery_task_runtime_seconds"):
        assert _sample(families[name], "_count", **labels) == 5
        assert _sample(families[name], "_bucket", le="+Inf", **labels) == 5
        total = _sample(families[name], "_sum", **labels)
        assert total is not None
        assert 0 < total < 5  # seconds, all five together
    assert _sample(families["celery_tasks"], "_total", state="failure", **labels) == 0

    def reported() -> float | None:
        rss = _families(client)["tradebot_process_resident_memory_bytes"]
        return _sample(rss, "", process=worker.hostname, pid=str(worker.proc.pid))

    rss = wait_for(reported, timeout=15, what="the worker's CPU/RSS report", worker=worker)
    assert rss > 20 * 1024 * 1024  # a Python process with Django and Celery loaded


def _prometheus_config(tmp: Path, app_port: int, node_port: int) -> Path:
    rules = ROOT / "config" / "prometheus" / "alerts.yml"
    shipped = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())
    authorization = next(j for j in shipped["scrape_configs"] if j["job_name"] == "trading-core")[
        "authorization"
    ]
    token_file = tmp / "metrics_token"
    token_file.write_text(METRICS_TOKEN + "\n")
    authorization = {**authorization, "credentials_file": str(token_file)}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "trading-core",
                "metrics_path": "/metrics",
                "authorization": authorization,
                "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}],
            },
            {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{node_port}"]}]},
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _targets() -> Iterator[tuple[str, str, str]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield board["title"], panel["title"], target["expr"]


def _grafana_substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr}"
    return expr


def _query(base: str, expr: str) -> dict:
    status, body = http_get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    answer = json.loads(body)
    answer["http_status"] = status
    return answer


@pytest.fixture
def app_server(worker, transactional_db, tmp_path) -> Iterator[str]:
    """The web process as production runs it (uvicorn, ASGI) on the test database."""
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": redis_url(),
        "PYTHONUNBUFFERED": "1",
        "METRICS_BEARER_TOKEN": METRICS_TOKEN,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "tradebot.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--lifespan",
        "off",
    ]
    url = f"http://127.0.0.1:{port}"
    with server(args, ready_url=f"{url}/health", log=tmp_path / "web.log", env=env, cwd=ROOT):
        yield url


def test_grafana_panels_when_prometheus_scrapes_the_app_then_every_target_returns_data(
    worker, app_server
) -> None:
    prometheus = binary("prometheus", "prometheus")
    node_exporter = binary("prometheus-node-exporter", "prometheus-node-exporter")
    _clear_metrics()
    observability_data_create()
    stop = threading.Event()

    def traffic() -> None:  # the execution worker keeps working while Prometheus scrapes
        while not stop.is_set():
            _send_tasks(3)
            stop.wait(0.3)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    targets = list(_targets())
    assert len(targets) >= 40
    with tempfile.TemporaryDirectory(prefix="tradebot-prom-") as tmp_name:
        tmp = Path(tmp_name)
        node_port, prom_port = free_port(), free_port()
        node_args = [
            node_exporter,
            f"--web.listen-address=127.0.0.1:{node_port}",
            "--no-collector.systemd",  # no systemd here (nor in the node-exporter container)
        ]
        base = f"http://127.0.0.1:{prom_port}"
        prom_args = [
            prometheus,
            f"--config.file={_prometheus_config(tmp, int(app_server.rsplit(':', 1)[1]), node_port)}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        try:
            with (
                server(
                    node_args,
                    ready_url=f"http://127.0.0.1:{node_port}/metrics",
                    log=tmp / "node.log",
                ),
                server(prom_args, ready_url=f"{base}/-/ready", log=tmp / "prom.log"),
            ):
                wait_for(
                    lambda: _query(base, "min(count_over_time(up[1m])) >= 5 and sum(up) == 2")[
                        "data"
                    ]["result"],
                    timeout=60,
                    interval=0.5,
                    what="five good scrapes of the app and node-exporter",
                )
                failures = _run_all(base, targets, deadline=time.monotonic() + 30)
        finally:
            stop.set()
            sender.join(timeout=5)

    assert failures == []


def _run_all(base: str, targets: list[tuple[str, str, str]], deadline: float) -> list[str]:
    """Every target must parse and return a non-empty result (retried until the deadline:
    a rate needs two scrapes, the worker's report comes every 10 s)."""
    pending = list(targets)
    while True:
        failures, still = [], []
        for board, panel, expr in pending:
            answer = _query(base, _grafana_substitute(expr))
            if answer.get("status") != "success":
                failures.append(f"{board} / {panel}: {expr}: {answer.get('error')}")
                continue
            if not answer["data"]["result"] and not any(n in expr for n in LATER):
                still.append((board, panel, expr))
        if failures or not still or time.monotonic() > deadline:
            return failures + [f"{b} / {p}: no data: {e}" for b, p, e in still]
        pending = still
        time.sleep(1)


def test_dashboards_when_listed_then_broker_panels_read_the_broker_metrics() -> None:
    panels = {(b, p): e for b, p, e in _targets()}

    assert "broker_connected" in panels[("Tradebot / Overview", "Broker connected")]
    assert (
        "reconciliation_discrepancies_open"
        in panels[("Tradebot / Overview", "Open reconciliation discrepancies")]
    )
    assert all(re.search(r"\S", e) for e in panels.values())
