"""The live engine end to end, as staging and prod run it, against the loopback Kraken fake.

Real processes: ``manage.py run_engine`` (live feeds), the Celery ``execution`` worker and
(for the Kraken account) beat, on the pytest test database and Redis. The Kraken fake
serves OHLC from a recorded real file (Apache-2.0, ../shared/data/crypto) on a market
clock running ``SCALE`` x real time; the engine's feed clock runs on the same one
(ENGINE_FEED_TIME_*, dev/test only).

1. staging: a paper account's plan takes Kraken's bars; the connection drops mid-stream
   and again while backfilling, the engine is stopped (SIGTERM) and started again; the
   stored bars equal the recorded file exactly, no bar is decided twice, orders fill in
   the paper broker and reconciliation against its book is clean.
2. the soak: two hours of market time with a Kraken account (test environment: orders
   really go to the fake, which executes them): every bar stored once, every order sent
   once, fills booked once, memory flat (RSS printed).
"""

from __future__ import annotations

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
from apps.marketdata.models import Bar, FeedStatus, Instrument
from apps.trading.models import Fill, Order
from tests.fakes.kraken import KrakenFake
from tests.integration.conftest import CeleryWorker, purge_execution_queue, wait_for
from tests.integration.processes import (
    beat_process,
    broker_sync_scheduled,
    engine_process,
    live_plan,
    process_env,
)
from tests.paths import SHARED_DATA

RECORDED = SHARED_DATA / "crypto" / "BTC-USD_1m_coinbase.csv"
ORIGIN = datetime(2016, 10, 9, 0, 0, tzinfo=UTC)  # two days into the file
SCALE = 60.0  # one market minute per real second

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def recorded() -> dict[datetime, tuple]:
    if not RECORDED.is_file():
        pytest.fail(f"recorded data missing: {RECORDED} (shared/ must be beside the repo)")
    return {
        b.ts: (b.open, b.high, b.low, b.close, b.volume)
        for b in read_bars(RECORDED)
        if ORIGIN - timedelta(hours=3) <= b.ts <= ORIGIN + timedelta(hours=4)
    }


@pytest.fixture
def kraken_ohlc() -> Iterator[tuple[KrakenFake, float]]:
    """The fake serving the recorded candles; its market clock at ORIGIN at wall time t0."""
    with KrakenFake(balances={"USD": "100000"}, ohlc_history=60) as fake:
        fake.load_ohlc("XBTUSD", RECORDED)
        t0 = time.time()
        fake.market.set(ORIGIN, speed=SCALE)
        yield fake, t0


def btc() -> Instrument:
    instrument, _ = Instrument.objects.get_or_create(
        symbol="BTC-USD",
        defaults={
            "base": "BTC",
            "quote": "USD",
            "tick_size": Decimal("0.1"),
            "lot_size": Decimal("0.00000001"),
        },
    )
    return instrument


def trading_plan(broker: str) -> Account:
    btc()
    return live_plan(broker=broker, venue="kraken", instrument="BTC-USD")


def stored() -> list[Bar]:
    return list(Bar.objects.filter(instrument__symbol="BTC-USD").order_by("ts"))


def assert_bars_equal_the_recording(recorded: dict[datetime, tuple]) -> list[Bar]:
    bars = stored()
    assert bars, "no bar stored"
    expected = [ts for ts in sorted(recorded) if bars[0].ts <= ts <= bars[-1].ts]
    assert [b.ts for b in bars] == expected  # no gap, no duplicate, in order
    for b in bars:
        assert (b.open, b.high, b.low, b.close, b.volume) == recorded[b.ts], b.ts
    return bars


def assert_decided_once() -> None:
    per_bar = Counter(DecisionLog.objects.values_list("bar_ts", flat=True))
    assert per_bar, "the plan never traded"
    assert max(per_bar.values()) == 1, [ts for ts, n in per_bar.items() if n > 1]


def test_staging_when_feed_drops_and_engine_restarts_then_bars_exact_and_books_clean(
    kraken_ohlc, recorded, log_dir
) -> None:
    fake, t0 = kraken_ohlc
    account = trading_plan("paper")
    env = process_env(
        log_dir,
        environment="staging",
        origin=ORIGIN,
        origin_at=t0,
        scale=SCALE,
        extra={"KRAKEN_API_URL": fake.url, "KRAKEN_RATE_LIMIT": "false", "TRADING_BROKER": "paper"},
    )
    worker = CeleryWorker(env, log_dir)
    engine = engine_process(env, log_dir, "--source", "live")
    purge_execution_queue()
    worker.start()
    try:
        engine.start()
        wait_for(
            lambda: len(stored()) >= 70,
            timeout=60,
            what="backfill and live bars",
            log=engine.log_tail,
        )
        # The connection drops mid-stream, then again while the feed backfills.
        fake.disconnect_next("OHLC")
        fake.cut_next("OHLC", times=2)
        settled = len(stored())
        wait_for(
            lambda: len(stored()) >= settled + 10,
            timeout=60,
            what="bars after the drops",
            log=engine.log_tail,
        )

        # SIGTERM: the bar in progress is finished, then the engine stops cleanly.
        assert engine.stop() == 0, engine.log_tail()
        assert "stopped cleanly" in engine.log()
        before = len(stored())
        time.sleep(3)  # three market minutes pass while it is down
        engine.start()
        wait_for(
            lambda: len(stored()) >= before + 15 and Fill.objects.filter(account=account).exists(),
            timeout=90,
            what="bars after the restart and a paper fill",
            log=engine.log_tail,
        )
        assert engine.stop() == 0, engine.log_tail()
    finally:
        engine.stop()
        worker.stop()
        purge_execution_queue()

    log = engine.log()
    assert "resumes after" in log
    assert "disconnected" in log.lower()
    assert_bars_equal_the_recording(recorded)
    assert_decided_once()
    assert FeedStatus.objects.get(feed="kraken:BTC-USD:1m").bars_accepted > 0
    # Orders went through the execution worker to the paper broker and filled there.
    sent = Order.objects.filter(account=account).exclude(status__in=["denied", "initialized"])
    assert sent.exists()
    run = reconcile_account(account=account, trigger=ReconciliationTrigger.COMMAND)
    assert run.outcome == ReconciliationOutcome.CLEAN, run.error


def test_soak_when_two_hours_of_market_time_then_each_bar_and_order_once_and_memory_flat(
    kraken_ohlc, recorded, log_dir, capsys
) -> None:
    fake, t0 = kraken_ohlc
    fake.auto_fill()
    account = trading_plan("kraken")
    broker_sync_scheduled()
    env = process_env(
        log_dir,
        environment="test",
        origin=ORIGIN,
        origin_at=t0,
        scale=SCALE,
        extra={
            "KRAKEN_API_URL": fake.url,
            "KRAKEN_API_KEY": fake.api_key,
            "KRAKEN_API_SECRET": fake.api_secret,
            "KRAKEN_RATE_LIMIT": "false",
            "KRAKEN_TIMEOUT_SECONDS": "3",
        },
    )
    worker = CeleryWorker(env, log_dir)
    beat = beat_process(env, log_dir)
    engine = engine_process(env, log_dir, "--source", "live")
    end = ORIGIN + timedelta(hours=2)
    purge_execution_queue()
    worker.start()
    try:
        beat.start()
        engine.start()
        wait_for(
            lambda: len(stored()) >= 70, timeout=60, what="the first live bars", log=engine.log_tail
        )
        rss_start = engine.rss_mb()
        wait_for(
            lambda: stored()[-1].ts >= end - timedelta(minutes=1),
            timeout=2 * 3600 / SCALE + 60,
            interval=1.0,
            what="two hours of market time",
            log=engine.log_tail,
        )
        rss_end = engine.rss_mb()
        assert engine.stop() == 0, engine.log_tail()
        # Let the last fills come back through brokers.sync.
        wait_for(
            lambda: (
                not Order.objects.filter(
                    account=account, status__in=["submitted", "accepted"]
                ).exists()
            ),
            timeout=30,
            what="the last orders to fill",
        )
    finally:
        engine.stop()
        beat.stop()
        worker.stop()
        purge_execution_queue()

    with capsys.disabled():
        print(f"\nsoak: engine RSS {rss_start:.1f} MB after warm-up, {rss_end:.1f} MB after 2 h")
    bars = assert_bars_equal_the_recording(recorded)
    assert bars[-1].ts - bars[0].ts >= timedelta(hours=2)
    assert_decided_once()
    orders = list(Order.objects.filter(account=account).exclude(status="denied"))
    assert len(orders) >= 4, "the soak must trade"
    from apps.trading.venues.kraken.ids import kraken_client_order_id

    for order in orders:  # sent once each: one order at Kraken per client id
        assert len(fake.orders_by_cl_ord_id(kraken_client_order_id(order.client_order_id))) == 1
    assert fake.add_order_calls == len(orders)
    trade_ids = list(Fill.objects.filter(account=account).values_list("trade_id", flat=True))
    assert len(trade_ids) == len(set(trade_ids)) == len(orders)
    assert rss_end - rss_start < 40, f"engine memory grew {rss_start:.1f} -> {rss_end:.1f} MB"
