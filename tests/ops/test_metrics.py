"""/metrics of the app (Django test client, real PostgreSQL and Redis): every metric the ops
spec (table 4.2) and the observability issue ask for, with values computed from the rows."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics_store, process_metrics
from apps.ops.celery_metrics import OUTCOMES, RUNTIME, WAIT
from apps.ops.metrics import broker_queue_keys
from tests.ops.observability_data import (
    ACCOUNT,
    FILL_RATE,
    ORDERS_TODAY,
    SLIPPAGE_BPS,
    observability_data_create,
)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

# Table 4.2 and the list, by the names the alert rules and dashboards use.
# CPU %, RAM % and disk % of the host come from node-exporter (compose), the app
# processes' own CPU and RAM from tradebot_process_*.
REQUIRED = {
    # system (the app's processes)
    "tradebot_process_cpu_seconds": "counter",
    "tradebot_process_resident_memory_bytes": "gauge",
    # trading
    "trading_drawdown_pct": "gauge",
    "trading_daily_pnl_pct": "gauge",
    "trading_open_positions": "gauge",
    "trading_equity": "gauge",
    "trading_orders_today": "gauge",
    "trading_fill_rate": "gauge",
    "trading_slippage_bps": "gauge",
    "trading_realized_pnl": "gauge",
    "trading_unrealized_pnl": "gauge",
    "trading_system_mode": "gauge",
    # risk
    "trading_var_95": "gauge",
    "trading_gross_exposure": "gauge",
    "trading_exposure": "gauge",
    "trading_correlation": "gauge",
    # connectivity and reconciliation (apps.brokers.metrics)
    "broker_connected": "gauge",
    "reconciliation_discrepancies_open": "gauge",
    "data_feed_last_update": "gauge",
    "django_http_requests_latency_seconds_by_view_method": "histogram",
    # ML
    "ml_calibration_ece": "gauge",
    "ml_predictions_total": "gauge",
    "ml_feature_psi_max": "gauge",
    # Celery, InfluxDB writer, backups
    "celery_queue_length": "gauge",
    WAIT: "histogram",
    RUNTIME: "histogram",
    OUTCOMES.removesuffix("_total"): "counter",
    "influxdb_write_errors": "counter",
    "backup_last_success_timestamp": "gauge",
}
# Metrics the dashboards may use before the app exposes them (none left).
LATER: set[str] = set()


@pytest.fixture
def metrics_redis():
    """This run's Redis database without metric aggregates, before and after."""
    conn = metrics_store.client()
    keys = list(conn.scan_iter(f"{metrics_store.PREFIX}:*"))
    if keys:
        conn.delete(*keys)
    yield conn
    keys = list(conn.scan_iter(f"{metrics_store.PREFIX}:*"))
    if keys:
        conn.delete(*keys)


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def values(family, **match: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if all(s.labels.get(k) == v for k, v in match.items())
    }


def only(family, suffix: str = "", **match: str) -> float:
    found = [
        s.value
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, (family.name, suffix, match, family.samples)
    return found[0]


def test_metrics_when_scraped_then_every_required_metric_has_samples(client, metrics_redis) -> None:
    # Arrange
    observability_data_create()
    client.get("/health")  # one request through the middleware: the latency histogram
    batch = metrics_store.Batch()
    batch.observe(WAIT, ("trading.order_send", "execution"), 0.004)
    batch.observe(RUNTIME, ("trading.order_send", "execution"), 0.02)
    batch.inc(OUTCOMES, ("trading.order_send", "execution", "success"))
    assert batch.send()

    # Act
    families = scrape(client)

    # Assert
    missing = {name for name in REQUIRED if name not in families}
    assert missing == set()
    wrong_type = {n: families[n].type for n, t in REQUIRED.items() if families[n].type != t}
    assert wrong_type == {}
    empty = {name for name in REQUIRED if not families[name].samples}
    assert empty == set()


def test_metrics_when_orders_filled_then_fill_rate_slippage_and_orders_today_exact(
    client, metrics_redis
) -> None:
    observability_data_create()

    families = scrape(client)

    assert only(families["trading_orders_today"], account=ACCOUNT) == ORDERS_TODAY
    assert only(families["trading_fill_rate"], account=ACCOUNT) == pytest.approx(FILL_RATE)
    assert only(families["trading_slippage_bps"], account=ACCOUNT) == pytest.approx(SLIPPAGE_BPS)
    assert only(families["trading_slippage_orders"], account=ACCOUNT) == 3
    # Two open positions (BTC long, ETH short): the exposures add up to gross and net.
    exposures = values(families["trading_exposure"], account=ACCOUNT)
    assert len(exposures) == 2
    assert only(families["trading_gross_exposure"], account=ACCOUNT) == pytest.approx(
        sum(abs(v) for v in exposures.values())
    )
    assert only(families["trading_net_exposure"], account=ACCOUNT) == pytest.approx(
        sum(exposures.values())
    )
    corr = only(families["trading_correlation"], account=ACCOUNT, a="BTC-USD", b="ETH-USD")
    assert -1.0 <= corr <= 1.0
    assert only(families["trading_correlation"], account=ACCOUNT, a="BTC-USD", b="BTC-USD") == (
        pytest.approx(1.0)
    )


def test_metrics_when_no_order_finished_then_fill_rate_and_slippage_absent(client) -> None:
    from apps.trading.services.accounts import account_get_or_create

    account_get_or_create(name="idle")

    families = scrape(client)

    assert only(families["trading_orders_today"], account="idle") == 0
    assert values(families["trading_fill_rate"], account="idle") == {}
    assert values(families["trading_slippage_bps"], account="idle") == {}


def test_metrics_when_messages_wait_on_the_broker_then_queue_length_counts_every_priority(
    client, settings
) -> None:
    conn = metrics_store.client(settings.CELERY_BROKER_URL)
    plain, priority = broker_queue_keys("ml")[0], broker_queue_keys("ml")[2]
    conn.delete(plain, priority)
    try:
        conn.rpush(plain, "a", "b", "c")
        conn.rpush(priority, "d")

        families = scrape(client)

        assert only(families["celery_queue_length"], queue="ml") == 4
        assert only(families["celery_queue_length"], queue="execution") >= 0
    finally:
        conn.delete(plain, priority)


def test_metrics_when_tasks_observed_then_histogram_cumulative_with_exact_sum_and_count(
    client, metrics_redis
) -> None:
    batch = metrics_store.Batch()
    for seconds in (0.0005, 0.003, 0.003, 7.0, 1000.0):
        batch.observe(RUNTIME, ("ops.backup", "maintenance"), seconds)
    batch.inc(OUTCOMES, ("ops.backup", "maintenance", "failure"))
    assert batch.send()

    families = scrape(client)

    runtime = families[RUNTIME]
    labels = {"task": "ops.backup", "queue": "maintenance"}
    assert only(runtime, "_count", **labels) == 5
    assert only(runtime, "_sum", **labels) == pytest.approx(1007.0065)
    assert only(runtime, "_bucket", le="0.001", **labels) == 1
    assert only(runtime, "_bucket", le="0.005", **labels) == 3
    assert only(runtime, "_bucket", le="10.0", **labels) == 4
    assert only(runtime, "_bucket", le="+Inf", **labels) == 5
    outcomes = families[OUTCOMES.removesuffix("_total")]
    assert only(outcomes, "_total", state="failure", **labels) == 1
    assert only(outcomes, "_total", state="success", **labels) == 0


def test_metrics_when_a_process_reported_then_its_cpu_and_rss_next_to_the_web_process(
    client, metrics_redis
) -> None:
    fresh = {
        "process": "execution@box",
        "host": "box",
        "pid": 4242,
        "cpu_seconds": 12.5,
        "rss_bytes": 123456789,
        "start_time": 1.7e9,
        "ts": time.time(),
    }
    dead = {**fresh, "pid": 4141, "ts": time.time() - process_metrics.STALE_AFTER - 5}
    forgotten = {**fresh, "pid": 4040, "ts": time.time() - process_metrics.FORGET_AFTER - 5}
    for snap in (fresh, dead, forgotten):
        metrics_redis.hset(metrics_store.PROCESS_KEY, process_metrics.field(snap), json.dumps(snap))

    families = scrape(client)

    rss = values(families["tradebot_process_resident_memory_bytes"])
    by_pid = {dict(k)["pid"]: v for k, v in rss.items()}
    assert by_pid["4242"] == 123456789
    assert str(os.getpid()) in by_pid  # the web process itself
    assert "4141" not in by_pid
    cpu = only(families["tradebot_process_cpu_seconds"], "_total", pid="4242")
    assert cpu == 12.5
    assert not metrics_redis.hexists(metrics_store.PROCESS_KEY, process_metrics.field(forgotten))
    assert metrics_redis.hexists(metrics_store.PROCESS_KEY, process_metrics.field(dead))


def test_metrics_when_redis_is_down_then_scrape_still_answers_with_database_metrics(
    client, settings
) -> None:
    observability_data_create()
    settings.REDIS_URL = settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    started = time.monotonic()
    families = scrape(client)
    elapsed = time.monotonic() - started

    assert only(families["trading_orders_today"], account=ACCOUNT) == ORDERS_TODAY
    assert families["celery_queue_length"].samples == []
    assert elapsed < 3


def test_compose_when_read_then_node_exporter_scraped_for_host_cpu_ram_and_disk() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())
    prometheus = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())

    assert compose["services"]["node-exporter"]["image"].startswith("prom/node-exporter:")
    node_jobs = [j for j in prometheus["scrape_configs"] if j["job_name"] == "node"]
    assert node_jobs[0]["static_configs"][0]["targets"] == ["node-exporter:9100"]


def test_alert_rules_when_read_then_every_metric_they_use_is_exposed_or_planned(client) -> None:
    import re

    rules = yaml.safe_load((ROOT / "config" / "prometheus" / "alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    used = {
        name
        for name in re.findall(r"\b([a-z][a-z0-9_]*_[a-z0-9_]+)\b", exprs)
        if not name.startswith("node_")  # node-exporter
        and name not in ("histogram_quantile", "label_replace")
    }
    observability_data_create()
    client.get("/health")
    names = set()
    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        names |= {s.name for s in family.samples} | {family.name}

    assert used - names - LATER == set()


@pytest.mark.django_db(transaction=True)
def test_risk_metrics_when_holdings_remarked_then_last_var_served_and_refreshed_in_background(
    client, monkeypatch
) -> None:
    from apps.trading.models import Position
    from apps.trading.risk_metrics import _risk_cache

    # Arrange: the account's first scrape computes its VaR inline
    observability_data_create()
    monkeypatch.setattr(_risk_cache, "max_age", 0.0)
    first = only(scrape(client)["trading_var_99"], account=ACCOUNT)
    btc = Position.objects.get(account__name=ACCOUNT, instrument__symbol="BTC-USD")
    Position.objects.filter(pk=btc.pk).update(quantity=btc.quantity * 5)

    # Act
    started = time.monotonic()
    served = scrape(client)
    elapsed = time.monotonic() - started
    assert _risk_cache.wait(timeout=30)
    refreshed = only(scrape(client)["trading_var_99"], account=ACCOUNT)

    # Assert: exposures move at once, the VaR once its background recompute is done
    assert only(served["trading_var_99"], account=ACCOUNT) == first
    assert only(served["trading_exposure"], account=ACCOUNT, instrument="BTC-USD") == (
        pytest.approx(float(btc.last_price * btc.quantity * 5))
    )
    assert refreshed != first
    assert refreshed > 0
    assert elapsed < 5


@pytest.mark.django_db
def test_metrics_when_nothing_happened_yet_then_never_reads_as_zero_not_absent() -> None:
    """An absent series silences its alert (BackupMissing, a dead Watchdog): "never" is 0."""
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("backup_last_success_timestamp") == 0
    assert REGISTRY.get_sample_value("alertmanager_watchdog_last_seen_timestamp") == 0
    for broker in ("kraken", "ibkr"):
        value = REGISTRY.get_sample_value("broker_malformed_messages_total", {"broker": broker})
        assert value is not None


# --- the alert rules against the label values the app really exports ----------------------


def _matchers(text: str) -> set[tuple[str, str, str]]:
    """(metric, label, value) of every `metric{label="value"}` equality matcher in text."""
    import re

    found = set()
    for metric, body in re.findall(r"\b([a-z_][a-z0-9_]*)\{([^}]*)\}", text):
        for label, value in re.findall(r'([a-z_]+)\s*=\s*"([^"]*)"', body):
            found.add((metric, label, value))
    return found


def test_alert_rules_and_their_tests_when_matching_a_label_then_the_app_exports_that_value(
    client,
) -> None:
    """A rule (or its promtool test) on trading_system_mode{mode="KILL"} while the app exports
    mode="kill" never fires, and its test passes: every label value they name for a metric
    the app exports must be one the app's /metrics really has."""
    prom = ROOT / "config" / "prometheus"
    rules = yaml.safe_load((prom / "alerts.yml").read_text())
    tests = yaml.safe_load((prom / "alerts.test.yml").read_text())["tests"]
    named = _matchers(" ".join(r["expr"] for g in rules["groups"] for r in g["rules"]))
    # In the tests' series, the labels a rule filters on (the others are free: a broker name).
    filtered = {(m, label) for m, label, _ in named}
    named |= {
        (m, label, v)
        for m, label, v in _matchers(
            " ".join(s["series"] for t in tests for s in t.get("input_series", []))
        )
        if (m, label) in filtered
    }
    observability_data_create()
    exported: dict[str, dict[str, set[str]]] = {}
    for family in scrape(client).values():
        for sample in family.samples:
            per_label = exported.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                per_label.setdefault(label, set()).add(value)

    ours = {(m, label, v) for m, label, v in named if m in exported and label in exported[m]}
    # the check sees the mode rules and their tests
    assert {("trading_system_mode", "mode", v) for v in ("kill", "pause", "normal")} <= ours
    wrong = {(m, label, v) for m, label, v in ours if v not in exported[m][label]}
    assert wrong == set()


@pytest.mark.parametrize("mode", ["NORMAL", "OBSERVATION", "PAUSE", "KILL"])
def test_mode_alerts_when_fed_the_scraped_series_then_fire_for_the_mode_in_force(
    client, tmp_path: Path, mode: str
) -> None:
    """promtool on the series a real scrape returns for each system mode (label values and
    all): TradingKilled fires in KILL, TradingPaused in PAUSE, neither otherwise."""
    import subprocess

    from apps.risk.domain.modes import SystemMode
    from apps.risk.models import SystemState
    from tests.ops.test_monitoring_config import tool

    SystemState.objects.update_or_create(pk=1, defaults={"mode": SystemMode[mode].value})
    family = scrape(client)["trading_system_mode"]
    series = [
        {
            "series": "trading_system_mode{"
            + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            + "}",
            "values": f"{s.value:g}x10",
        }
        for s in family.samples
    ]
    in_force = [s.labels for s in family.samples if s.value == 1]
    assert len(in_force) == 1
    rules = {
        r["alert"]: r
        for g in yaml.safe_load((ROOT / "config" / "prometheus" / "alerts.yml").read_text())[
            "groups"
        ]
        for r in g["rules"]
    }
    firing = {"PAUSE": "TradingPaused", "KILL": "TradingKilled"}.get(mode)
    cases = []
    for alert in ("TradingKilled", "TradingPaused"):
        expected = []
        if alert == firing:
            expected = [
                {
                    "exp_labels": {**rules[alert]["labels"], **in_force[0]},
                    "exp_annotations": rules[alert]["annotations"],
                }
            ]
        cases.append({"eval_time": "5m", "alertname": alert, "exp_alerts": expected})
    test_file = tmp_path / "modes.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(ROOT / "config" / "prometheus" / "alerts.yml")],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}],
            }
        )
    )

    result = subprocess.run(
        [tool("promtool", "prometheus"), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
