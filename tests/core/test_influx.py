"""The InfluxDB writer through the real influxdb-client: to VictoriaMetrics on loopback (it
speaks the InfluxDB v2 write API; read back over its HTTP API), and to a dead or silent
server, where trading must not wait and the failure must be counted.

Needs the Debian package victoria-metrics (skipped naming it outside CI).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.core import influx, metrics_store
from apps.marketdata.services import instrument_get_or_create
from apps.model.orders import Fill as FillValue
from apps.model.values import Side
from apps.trading.models import Order
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.common import new_client_order_id
from apps.trading.services.fills import fill_apply
from apps.trading.services.marking import mark_to_market
from tests.loopback import binary, free_port, http_get, server

pytestmark = pytest.mark.django_db


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    args = [
        binary("victoria-metrics", "victoria-metrics"),
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={tmp_path / 'vm'}",
        "-search.latencyOffset=0s",
    ]
    url = f"http://127.0.0.1:{port}"
    with server(args, ready_url=f"{url}/health", log=tmp_path / "vm.log"):
        yield url


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a hung InfluxDB."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    sock.close()


@pytest.fixture
def influx_settings(settings):
    """A fresh writer for the test's settings, this run's Redis without old counters."""
    settings.INFLUXDB_TOKEN = "test-token"  # noqa: S105 - loopback test server
    settings.INFLUXDB_ORG = "trading"
    settings.INFLUXDB_BUCKET = "trading"
    settings.INFLUXDB_FLUSH_INTERVAL = 0.05
    settings.INFLUXDB_TIMEOUT_MS = 300
    conn = metrics_store.client()
    conn.delete(*(f"{metrics_store.PREFIX}:c:{name}" for name, _ in influx.COUNTERS))
    influx.reset()
    yield settings
    influx.reset()


def counters() -> dict[str, float]:
    values = metrics_store.read_counters(name for name, _ in influx.COUNTERS)
    return {name: v.get((), 0.0) for name, v in values.items()}


def export(base: str, series: str) -> list[dict]:
    http_get(f"{base}/internal/force_flush")
    _, body = http_get(f"{base}/api/v1/export?match[]={urllib.parse.quote(series)}")
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def _filled_position(account_name: str) -> tuple:
    account = account_get_or_create(name=account_name, starting_cash=Decimal("10000"))
    order = Order.objects.create(
        account=account,
        instrument=instrument_get_or_create(symbol="BTC-USD"),
        client_order_id=new_client_order_id(),
        side="buy",
        order_type="market",
        quantity=Decimal("0.5"),
        decision_price=Decimal("60000"),
        status="accepted",
        submitted_at=timezone.now() - timedelta(seconds=2),
    )
    fill = fill_apply(
        fill=FillValue(
            trade_id="influx-1",
            client_order_id=order.client_order_id,
            instrument="BTC-USD",
            side=Side.BUY,
            quantity=Decimal("0.5"),
            price=Decimal("60030"),
            fee=Decimal("1.5"),
            ts=timezone.now() - timedelta(seconds=30),
        )
    )
    return account, fill


def test_writer_when_equity_marked_and_fill_booked_then_series_read_back_from_victoria(
    victoria, influx_settings, django_capture_on_commit_callbacks
) -> None:
    # Arrange
    influx_settings.INFLUXDB_URL = victoria
    ts = (timezone.now() - timedelta(seconds=10)).replace(microsecond=0)

    # Act
    with django_capture_on_commit_callbacks(execute=True):
        account, fill = _filled_position("influx")
    with django_capture_on_commit_callbacks(execute=True):
        snap = mark_to_market(account=account, prices={"BTC-USD": Decimal("61000")}, ts=ts)
    assert influx.flush(timeout=10)

    # Assert: the exact values and times, through VictoriaMetrics' own API
    equity = export(victoria, 'equity_equity{account="influx"}')
    assert [(s["values"], s["timestamps"]) for s in equity] == [
        ([float(snap.equity)], [int(ts.timestamp() * 1000)])
    ]
    unrealized = export(victoria, 'equity_unrealized_pnl{account="influx"}')
    assert unrealized[0]["values"] == [pytest.approx(0.5 * (61000 - 60030))]
    quantity = export(victoria, 'position_quantity{account="influx",instrument="BTC-USD"}')
    assert quantity[0]["values"] == [0.5]
    price = export(victoria, 'fill_price{account="influx",side="buy"}')
    assert price[0]["values"] == [60030.0]
    assert price[0]["timestamps"] == [int(fill.ts.timestamp() * 1000)]
    slippage = export(victoria, 'fill_slippage_bps{account="influx"}')
    assert slippage[0]["values"] == [pytest.approx(5.0)]  # bought 30 above 60000
    assert export(victoria, 'fill_order_latency_s{account="influx"}')[0]["values"][0] > 1.9
    # The fill, then the equity snapshot and the one position it marked.
    assert counters() == {influx.ERRORS: 0.0, influx.DROPPED: 0.0, influx.WRITTEN: 3.0}


def test_writer_when_latency_written_then_tagged_series_read_back(
    victoria, influx_settings
) -> None:
    influx_settings.INFLUXDB_URL = victoria
    ts = timezone.now() - timedelta(seconds=5)

    influx.write_latency(kind="decision", seconds=0.0123, ts=ts, account="paper")
    assert influx.flush(timeout=10)

    series = export(victoria, 'latency_seconds{kind="decision",account="paper"}')
    assert series[0]["values"] == [0.0123]


@pytest.mark.parametrize("sink", ["dead", "silent"])
def test_mark_to_market_when_influx_dead_or_silent_then_not_blocked_and_error_counted(
    sink, silent_server, influx_settings, client, django_capture_on_commit_callbacks
) -> None:
    # Arrange: nothing listens on a freed port; the silent server never answers (2 s timeout)
    influx_settings.INFLUXDB_TIMEOUT_MS = 2000
    influx_settings.INFLUXDB_URL = (
        f"http://127.0.0.1:{free_port()}" if sink == "dead" else silent_server
    )
    account, _ = _filled_position(f"influx-{sink}")
    influx.flush(timeout=5)
    errors_before = counters()[influx.ERRORS]

    # Act
    started = time.perf_counter()
    with django_capture_on_commit_callbacks(execute=True):
        snap = mark_to_market(
            account=account, prices={"BTC-USD": Decimal("61000")}, ts=timezone.now()
        )
    elapsed = time.perf_counter() - started

    # Assert: the mark is booked at once; the write fails in the background and is counted
    assert snap is not None
    assert elapsed < 1.0  # a blocking write would take the 2 s timeout
    assert influx.flush(timeout=10)
    after = counters()
    assert after[influx.ERRORS] >= errors_before + 1
    assert after[influx.DROPPED] >= 2  # the equity point and the position point
    body = client.get("/metrics").content.decode()
    scraped = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert scraped["influxdb_write_errors_total"] == after[influx.ERRORS]


def test_writer_when_buffer_full_then_new_points_dropped_and_counted(
    silent_server, influx_settings
) -> None:
    influx_settings.INFLUXDB_URL = silent_server
    writer = influx.InfluxWriter(
        url=silent_server,
        token="t",
        org="trading",
        bucket="trading",
        batch_size=1,
        flush_interval=0.05,
        buffer_points=3,
        timeout_ms=300,
    )
    point = ("latency", {"kind": "order"}, {"seconds": 0.01}, timezone.now())

    started = time.perf_counter()
    writer.submit([point] * 50)
    elapsed = time.perf_counter() - started

    assert elapsed < 0.05
    assert writer.flush(timeout=30)
    after = counters()
    # At most the batch in flight plus the 3 buffered points were tried; all 50 are lost.
    assert after[influx.DROPPED] == 50
    assert 1 <= after[influx.ERRORS] <= 4


def test_writer_when_url_unset_then_nothing_started(influx_settings) -> None:
    influx_settings.INFLUXDB_URL = ""

    influx.write_latency(kind="order", seconds=0.1, ts=timezone.now())

    assert influx.writer() is None
    assert counters() == {influx.ERRORS: 0.0, influx.DROPPED: 0.0, influx.WRITTEN: 0.0}
