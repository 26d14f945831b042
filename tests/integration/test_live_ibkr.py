"""The live engine end to end under staging settings, against the loopback TWS fake.

Real processes on the pytest test database and Redis: ``manage.py run_engine --source
live`` (its IbkrFeed streams 5-second bars from the fake), the Celery ``execution``
worker (the IBKR adapter places the orders at the fake) and beat (``brokers.sync``
brings the fills back). Staging allows IBKR only with a paper account (DU...); the
engine's feed and the worker have client ids of their own.

The fake serves recorded real SPY minutes (../shared/data/equity/SPY_1m.csv) and executes
every market order at the price of the minute forming (``auto_fill``); its market clock is
moved by a thread here in 5-second steps on the same clock the engine's feeds run
(``SCALE`` x real time from ``ORIGIN``, ENGINE_FEED_TIME_*). Mid-stream every TWS
connection is dropped (a gateway restart); the engine reconnects and backfills, then is
stopped with SIGTERM. The stored bars equal the file, no bar is decided twice, every
order reached the fake once and filled there, each fill is booked once, and the books
reconcile clean against the fake's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.accounts.models import Account
from apps.audit.models import DecisionLog
from apps.brokers.models import ReconciliationOutcome, ReconciliationTrigger
from apps.brokers.services.reconcile import reconcile_account
from apps.marketdata.domain.csvfile import read_bars
from apps.marketdata.models import AssetClass, Bar, FeedStatus, Instrument
from apps.trading.models import Fill, Order, Position
from apps.trading.venues.factory import venues_reset
from tests.fakes.tws import TwsFake
from tests.integration.conftest import CeleryWorker, purge_execution_queue, wait_for
from tests.integration.processes import (
    beat_process,
    broker_sync_scheduled,
    engine_process,
    live_plan,
    process_env,
)
from tests.paths import SHARED_DATA
from tradebot.env import Environment

RECORDED = SHARED_DATA / "equity" / "SPY_1m.csv"
ORIGIN = datetime(2013, 10, 7, 14, 0, tzinfo=UTC)  # 10:00 New York: every minute trades
SCALE = 60.0  # one market minute per real second
STEP = timedelta(seconds=5)  # TWS sends a 5-second bar every 5 s of market time
PAPER_ACCOUNT = "DU1234567"
WORKER_CLIENT_ID, FEED_CLIENT_ID, TEST_CLIENT_ID = 31, 41, 51

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def recorded() -> dict[datetime, tuple]:
    if not RECORDED.is_file():
        pytest.fail(f"recorded data missing: {RECORDED} (shared/ must be beside the repo)")
    return {
        b.ts: (b.open, b.high, b.low, b.close, b.volume)
        for b in read_bars(RECORDED)
        if ORIGIN - timedelta(days=1) <= b.ts <= ORIGIN + timedelta(hours=2)
    }


class MarketClock:
    """Moves the fake's market clock in 5-second steps, ``SCALE`` x real time from ``ORIGIN``
    at wall time ``t0``: the clock the engine's feeds run on (ENGINE_FEED_TIME_*)."""

    def __init__(self, fake: TwsFake, t0: float) -> None:
        self.fake, self.t0 = fake, t0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="market-clock", daemon=True)

    def now(self) -> datetime:
        return ORIGIN + timedelta(seconds=(time.time() - self.t0) * SCALE)

    def _run(self) -> None:
        try:
            market = ORIGIN
            while not self.stop.is_set():
                target = market + STEP
                wall = self.t0 + (target - ORIGIN).total_seconds() / SCALE
                if self.stop.wait(max(0.0, wall - time.time())):
                    return
                self.fake.advance_market(target)
                market = target
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            raise

    def __enter__(self) -> MarketClock:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def tws(settings) -> Iterator[tuple[TwsFake, float]]:
    """The fake serving SPY, executing market orders; its market clock at ORIGIN at wall t0.

    The test process's own adapter (the final reconciliation) has a client id of its own."""
    with TwsFake(accounts=(PAPER_ACCOUNT,), cash={"USD": Decimal("100000")}) as fake:
        fake.load_bars("SPY", RECORDED)
        fake.auto_fill()
        t0 = time.time()
        fake.set_market_time(ORIGIN)
        settings.IBKR_HOST, settings.IBKR_PORT = fake.host, fake.port
        settings.IBKR_CLIENT_ID, settings.IBKR_ACCOUNT = TEST_CLIENT_ID, PAPER_ACCOUNT
        settings.IBKR_TIMEOUT_SECONDS = 5.0
        # This process is the test environment (a live adapter on loopback), also when
        # pytest runs without ENVIRONMENT=test (the settings then say dev, which refuses it).
        settings.ENVIRONMENT = Environment.TEST
        venues_reset()
        try:
            yield fake, t0
        finally:
            venues_reset()
            from apps.trading.venues.ibkr.session import sessions_close_all

            sessions_close_all()


def trading_plan() -> Account:
    Instrument.objects.get_or_create(
        symbol="SPY",
        defaults={"base": "SPY", "quote": "USD", "asset_class": AssetClass.EQUITY,
                  "tick_size": Decimal("0.01"), "lot_size": Decimal("1")},
    )  # fmt: skip
    return live_plan(broker="ibkr", venue="ibkr", instrument="SPY")


def stored() -> list[Bar]:
    return list(Bar.objects.filter(instrument__symbol="SPY", timeframe="1m").order_by("ts"))


def last_stored() -> datetime | None:
    bar = Bar.objects.filter(instrument__symbol="SPY", timeframe="1m").order_by("-ts").first()
    return bar.ts if bar else None


def test_staging_ibkr_when_tws_drops_mid_stream_then_bars_exact_orders_once_and_books_clean(
    tws, recorded, log_dir
) -> None:
    fake, t0 = tws
    account = trading_plan()
    broker_sync_scheduled()
    env = process_env(
        log_dir,
        environment="staging",
        origin=ORIGIN,
        origin_at=t0,
        scale=SCALE,
        extra={
            "TRADING_BROKER": "ibkr",
            "IBKR_HOST": fake.host,
            "IBKR_PORT": str(fake.port),
            "IBKR_ACCOUNT": PAPER_ACCOUNT,
            "IBKR_CLIENT_ID": str(WORKER_CLIENT_ID),
            "IBKR_FEED_CLIENT_ID": str(FEED_CLIENT_ID),
            "IBKR_TIMEOUT_SECONDS": "5",
            # The accelerated feed clock is allowed only with every venue on loopback.
            "KRAKEN_API_URL": "http://127.0.0.1:9",
        },
    )
    worker = CeleryWorker(env, log_dir)
    beat = beat_process(env, log_dir)
    engine = engine_process(env, log_dir, "--source", "live")
    purge_execution_queue()
    began = time.monotonic()
    with MarketClock(fake, t0) as clock:
        worker.start()
        try:
            beat.start()
            engine.start()
            wait_for(
                lambda: (last_stored() or ORIGIN) >= ORIGIN + timedelta(minutes=5),
                timeout=60,
                what="backfill and five live bars",
                log=engine.log_tail,
            )
            # A gateway restart: every TWS connection (the feed's, the worker's) drops.
            assert fake.drop_connections() >= 1
            dropped_at = clock.now()
            wait_for(
                lambda: (
                    (last_stored() or ORIGIN) >= dropped_at + timedelta(minutes=30)
                    and Fill.objects.filter(account=account).exists()
                ),
                timeout=60,
                interval=0.2,
                what="thirty bars after the drop and a fill",
                log=engine.log_tail,
            )
            # SIGTERM: the bar in progress is finished, then the engine stops cleanly.
            assert engine.stop() == 0, engine.log_tail()
            # The last orders fill at the fake; brokers.sync books them.
            wait_for(
                lambda: (
                    not Order.objects.filter(
                        account=account, status__in=["initialized", "submitted", "accepted"]
                    ).exists()
                ),
                timeout=30,
                interval=0.2,
                what="the last orders to fill and be booked",
                log=worker.log_tail,
            )
        finally:
            engine.stop()
            beat.stop()
            worker.stop()
            purge_execution_queue()
    assert clock.error is None, clock.error
    elapsed = time.monotonic() - began
    print(f"\nlive ibkr: {elapsed:.0f} s wall, market {ORIGIN:%H:%M} -> {clock.now():%H:%M}")

    log = engine.log()
    assert "stopped cleanly" in log, engine.log_tail()
    # The feed reconnected after the drop.
    assert log.count("IBKR feed connected") >= 2, engine.log_tail()
    assert FeedStatus.objects.get(feed="ibkr:SPY:1m").bars_accepted > 0
    # The engine (feed, start-up reconciliation) never took the worker's client id.
    assert worker.log_path is not None
    assert "client id is already in use" not in worker.log_path.read_text(errors="replace")

    # Bars: exactly the file's minutes over their span (no gap, no duplicate, same values).
    bars = stored()
    assert bars, "no bar stored"
    assert bars[-1].ts >= dropped_at + timedelta(minutes=30)
    expected = [ts for ts in sorted(recorded) if bars[0].ts <= ts <= bars[-1].ts]
    assert [b.ts for b in bars] == expected
    for b in bars:
        assert (b.open, b.high, b.low, b.close, b.volume) == recorded[b.ts], b.ts

    # No bar decided twice.
    per_bar = Counter(DecisionLog.objects.values_list("bar_ts", flat=True))
    assert per_bar, "the plan never decided"
    assert max(per_bar.values()) == 1, [ts for ts, n in per_bar.items() if n > 1]

    # Every order sent reached the fake exactly once, and filled there.
    orders = list(Order.objects.filter(account=account).exclude(status="denied"))
    assert orders, "the plan never traded"
    for order in orders:
        assert fake.placed_count(order.client_order_id) == 1, order.client_order_id
        assert order.status == "filled", (order.client_order_id, order.status)
    assert fake.placed_count() == len(orders)

    # Fills booked once each: the fake's executions, no more.
    executions = fake.executions()
    booked = list(Fill.objects.filter(account=account).values_list("trade_id", "quantity"))
    trade_ids = [t for t, _ in booked]
    assert len(trade_ids) == len(set(trade_ids)) == len(executions)
    assert set(trade_ids) == {e[0] for e in executions}

    # Positions equal the fake's; reconciliation against it is clean.
    ours = {
        p.instrument.symbol: p.quantity
        for p in Position.objects.filter(account=account).select_related("instrument")
    }
    theirs = fake.positions()
    assert {s: q for s, q in ours.items() if q} == {s: q for s, q in theirs.items() if q}
    run = reconcile_account(account=account, trigger=ReconciliationTrigger.COMMAND)
    assert run.outcome == ReconciliationOutcome.CLEAN, (run.error, run.discrepancies_found)
