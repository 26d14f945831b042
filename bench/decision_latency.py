"""Decision latency: from "a bar arrives" to "the order reaches the paper broker".

Usage (the Makefile's ``make bench``)::

    ENVIRONMENT=test .venv/bin/python scripts/services.py test -- .venv/bin/python bench/decision_latency.py

Three paths, each printed as n / p50 / p99 / max next to a floor measured in the same run:

(a) pure, in process: engine-order fills (``PaperMatcher.on_bar``) -> ``strategy.on_bar`` ->
    ``OrderIntent`` -> ``order_check`` -> ``OrderState`` -> ``PaperMatcher.submit``, over the long
    series ``ml/BTC-USDT_1m_binance.csv.gz`` of the shared data set (``--shared-data`` or
    ``BENCH_SHARED_DATA``, default ``../shared/data`` beside the repository; the sample bars
    when it is absent and was not asked for explicitly):
    the bars whose signal makes an order, then the decision path forced on every bar.
    Floor: ``strategy.on_bar`` alone on the bars that hold. Target p99 < 1 ms.
(b) persisted, no queue: ``Engine.decide`` (paper fills, ``decision_make``, bar stored, one
    commit) with Celery eager, so ``order_send`` runs in process on commit. Floor: a ``SELECT 1``
    round trip and ``Engine.decide`` on bars that hold. As in the live loop
    (``apps.engine.live``), the bookkeeping (``Engine.settle``: feed status, marks, equity rules)
    runs after the decision, once no bar is waiting (the loop waits ENGINE_SETTLE_DELAY_SECONDS,
    0.1 s; here: once the order has been sent); its time is printed on its own row.
(c) through Redis and a real ``celery worker -Q execution -P solo`` subprocess: the same engine,
    ``decision_make`` enqueues on commit, the worker runs ``order_send``. Latency = the worker's
    ``order.submitted_at`` (set just before the broker call) and the ``order.sent`` audit time
    (after the broker's ack), minus ``timezone.now()`` taken when the bar arrived (wall clocks of
    one machine). Floor: a Redis PING and a no-op task (``celery.accumulate``) round trip through
    the same worker and queue. Target p99 < 10 ms.

(b) and (c) replay the three sample files (``--sample-dir`` or ``BENCH_SAMPLE_DIR``, default
``data/sample``) merged by time through ``sma_cross`` (fast=10, slow=30): about 300 orders.
The script sets itself up: a throwaway database it creates on DATABASE_URL's server (the one
DATABASE_URL names if it does not exist yet, else ``<name>_bench_decision_<hex>``; dropped at
the end) migrated by ``manage.py migrate``, and Redis database ``BENCH_REDIS_DB`` (default 15)
on REDIS_URL's server, so that its worker never takes messages of a test run sharing the test
database number. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from operator import attrgetter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import (  # noqa: E402
    SAMPLE_DIR_DEFAULT,
    SAMPLE_DIR_ENV,
    SHARED_DATA_DEFAULT,
    SHARED_DATA_ENV,
    Worker,
    bench_database,
    data_dir,
    database_name,
    percentile,
    redis_db_url,
    require_data,
)

sys.path.insert(0, str(REPO))

from apps.marketdata.domain.csvfile import read_bars  # noqa: E402
from apps.model.bars import Bar  # noqa: E402
from apps.model.orders import OrderIntent, OrderState, OrderStatus  # noqa: E402
from apps.model.paper import PaperMatcher  # noqa: E402
from apps.model.values import Instrument, OrderType, Side  # noqa: E402
from apps.risk.domain.checks import RiskContext, RiskLimits, order_check  # noqa: E402
from apps.risk.domain.modes import SystemMode  # noqa: E402
from apps.strategies.domain.base import SignalAction  # noqa: E402
from apps.strategies.domain.sizing import quantity_for_stake  # noqa: E402
from apps.strategies.domain.sma_cross import SmaCross  # noqa: E402

SAMPLE_GLOB = "*_1m_coinbase.csv"
LONG = Path("ml") / "BTC-USDT_1m_binance.csv.gz"  # in the shared data set
STAKE = Decimal(1000)
FEE = Decimal("0.001")
PARAMS = {"fast": 10, "slow": 30}
LIMITS = RiskLimits(max_order_notional=Decimal(100_000), max_position_notional=Decimal(250_000))
Q12 = Decimal("1e-12")
WARMUP_ORDERS = 3
IN_FLIGHT = (OrderStatus.INITIALIZED.value, OrderStatus.SUBMITTED.value)


# --------------------------------------------------------------------------- figures


def row(label: str, values_us: list[float], unit: str = "us") -> None:
    if not values_us:
        print(f"  {label:<58} n=0")
        return
    v = sorted(values_us)
    scale, suffix = (1.0, "us") if unit == "us" else (1000.0, "ms")
    p50, p99, top = (percentile(v, 0.5) / scale, percentile(v, 0.99) / scale, v[-1] / scale)
    print(
        f"  {label:<58} n={len(v):>6}  p50={p50:>9.3f} {suffix}  p99={p99:>9.3f} {suffix}  "
        f"max={top:>9.3f} {suffix}"
    )


def load_average(when: str) -> None:
    """The 1/5/15-minute load averages: figures from a loaded machine are not comparable
    with a quiet one's (the issue asks for them next to the figures)."""
    one, five, fifteen = os.getloadavg()
    print(f"  load average ({when}): {one:.2f} {five:.2f} {fifteen:.2f}")


def merged(paths: list[Path]) -> Iterator[Bar]:
    return heapq.merge(*(read_bars(p) for p in paths), key=attrgetter("ts"))


# --------------------------------------------------------------------------- (a) pure path


def bench_pure(paths: list[Path]) -> None:
    """The decision path of the engine without Django: fills, strategy, intent, checks, matcher."""
    bars = list(merged(paths))
    ns = time.perf_counter_ns
    specs: dict[str, Instrument] = {}

    def run(force: bool) -> tuple[list[float], list[float]]:
        strategy = SmaCross(**PARAMS)
        matcher = PaperMatcher(fee_rate=FEE)
        position: dict[str, Decimal] = {}
        order_us: list[float] = []
        hold_us: list[float] = []
        for bar in bars:
            t0 = ns()
            # Fills of orders decided on an earlier bar come first, as in Engine.on_bar.
            for fill in matcher.on_bar(bar):
                position[fill.instrument] = position.get(fill.instrument, Decimal(0)) + (
                    fill.quantity if fill.side is Side.BUY else -fill.quantity
                )
            signal_ = strategy.on_bar(bar)
            action = signal_.action
            qty_held = position.get(bar.instrument, Decimal(0))
            if force:  # every bar decides: buy when flat, sell the position when long
                action = SignalAction.ENTER_LONG if qty_held <= 0 else SignalAction.EXIT_LONG
                if matcher.open_orders(bar.instrument):
                    action = SignalAction.HOLD
            elif (action is SignalAction.ENTER_LONG and qty_held > 0) or (
                action is SignalAction.EXIT_LONG and qty_held <= 0
            ):
                action = SignalAction.HOLD
            if action is SignalAction.HOLD:
                hold_us.append((ns() - t0) / 1000)
                continue
            spec = specs.get(bar.instrument)
            if spec is None:
                spec = specs[bar.instrument] = Instrument.from_symbol(bar.instrument)
            if action is SignalAction.ENTER_LONG:
                qty = quantity_for_stake(STAKE, signal_.price, spec).quantize(
                    Q12, rounding=ROUND_DOWN
                )
                intent = OrderIntent(
                    instrument=bar.instrument,
                    side=Side.BUY,
                    quantity=qty,
                    decision_price=signal_.price,
                    reason="sma cross above",
                )
            else:
                intent = OrderIntent(
                    instrument=bar.instrument,
                    side=Side.SELL,
                    quantity=qty_held,
                    decision_price=signal_.price,
                    reduce_only=True,
                    reason="exit long",
                )
            ctx = RiskContext(
                mode=SystemMode.NORMAL, last_price=signal_.price, position_quantity=qty_held
            )
            risk = order_check(intent=intent, ctx=ctx, limits=LIMITS)
            if risk.approved:
                state = OrderState(
                    client_order_id=f"tb-{uuid.uuid4().hex}",
                    instrument=intent.instrument,
                    side=intent.side,
                    order_type=OrderType.MARKET,
                    quantity=intent.quantity,
                )
                matcher.submit(state, now=bar.ts)
            order_us.append((ns() - t0) / 1000)
        return order_us, hold_us

    run(force=False)  # warm-up pass (imports, caches), not reported
    order_us, hold_us = run(force=False)
    forced_us, _ = run(force=True)
    name = ", ".join(p.name for p in paths)
    print(f"\n(a) pure in-process path over {len(bars):,} bars ({name}); target p99 < 1 ms")
    row("floor: bar that holds (fills check + strategy.on_bar)", hold_us)
    row("bar -> order on the paper book (sma_cross signals)", order_us)
    row("bar -> order on the paper book (forced on every bar)", forced_us)


# --------------------------------------------------------------------------- database and Redis


# --------------------------------------------------------------------------- (b), (c) persisted paths


def replay(
    account_name: str, bars: list[Bar], wait: Callable[[], None] | None
) -> tuple[dict, list[float]]:
    """Feed ``bars`` to a fresh Engine as the live loop does (decide, then settle); returns
    ({(symbol, bar ts): (t_arrive, decide us, t_enqueued)}, decide us of bars that hold,
    settle us of every bar)."""
    from django.utils import timezone

    from apps.engine.runner import Engine
    from apps.trading.models import Order
    from apps.trading.services import decisions as services
    from apps.trading.services.accounts import account_get_or_create

    # When decision_make's on-commit hook has handed the order to Celery (the engine's part).
    enqueued: list[datetime] = []
    enqueue_send = services._enqueue_send

    def timed_enqueue(task: object, order_id: int) -> None:
        enqueue_send(task, order_id)
        enqueued.append(timezone.now())

    services._enqueue_send = timed_enqueue

    account = account_get_or_create(name=account_name)
    engine = Engine.for_account(
        account=account,
        strategy_factory=lambda: SmaCross(**PARAMS),
        strategy_name="sma_cross",
        strategy_params=PARAMS,
        stake=STAKE,
    )
    arrivals: dict[tuple[str, datetime], tuple[datetime, float]] = {}
    hold_us: list[float] = []
    settle_us: list[float] = []
    orders_before = 0
    try:
        for bar in bars:
            enqueued.clear()
            arrived = timezone.now()
            t0 = time.perf_counter_ns()
            engine.decide(engine.default_feed, engine.default_timeframe, bar)
            took = (time.perf_counter_ns() - t0) / 1000
            orders = Order.objects.filter(account=account).count()
            if orders != orders_before:
                orders_before = orders
                arrivals[(bar.instrument, bar.ts)] = (arrived, took, (enqueued or [None])[0])
                if wait is not None:
                    wait()
            else:
                hold_us.append(took)
            # The live loop settles once no bar is waiting (after ENGINE_SETTLE_DELAY_SECONDS).
            t0 = time.perf_counter_ns()
            engine.settle()
            settle_us.append((time.perf_counter_ns() - t0) / 1000)
    finally:
        services._enqueue_send = enqueue_send
    return arrivals, hold_us, settle_us


def latencies(
    account_name: str, arrivals: dict
) -> tuple[list[float], list[float], list[float], list[float], list[float], int]:
    """Per decided order that the checks approved: bar to submitted_at, to order.sent, engine
    on_bar, enqueued to submitted_at, bar to enqueued (all us); and the number not sent."""
    from apps.audit.models import AuditEvent
    from apps.trading.models import Order

    sent_at = dict(
        AuditEvent.objects.filter(action="order.sent").values_list("target", "created_at")
    )
    orders = (
        Order.objects.filter(account__name=account_name)
        .select_related("instrument")
        .order_by("created_at", "id")
    )
    to_submitted, to_sent, on_bar, after, to_enqueued, missing = [], [], [], [], [], 0
    for i, order in enumerate(orders):
        arrived, took, enqueued_at = arrivals[(order.instrument.symbol, order.decision_bar_ts)]
        if order.status == OrderStatus.DENIED.value:  # refused by the checks: never meant to leave
            continue
        if order.client_order_id not in sent_at or order.submitted_at is None:
            missing += 1
            continue
        if i < WARMUP_ORDERS:
            continue
        to_submitted.append((order.submitted_at - arrived).total_seconds() * 1e6)
        to_sent.append((sent_at[order.client_order_id] - arrived).total_seconds() * 1e6)
        on_bar.append(took)
        after.append((order.submitted_at - enqueued_at).total_seconds() * 1e6)
        to_enqueued.append((enqueued_at - arrived).total_seconds() * 1e6)
    return to_submitted, to_sent, on_bar, after, to_enqueued, missing


def flush_database() -> None:
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)


def select1_us(n: int = 500) -> list[float]:
    from django.db import connection

    out = []
    with connection.cursor() as cursor:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def bench_eager(bars: list[Bar]) -> None:
    from tradebot.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        arrivals, hold_us, settle_us = replay("bench-eager", bars, wait=None)
    finally:
        app.conf.task_always_eager = False
    to_submitted, to_sent, on_bar, _, _, missing = latencies("bench-eager", arrivals)
    print(
        f"\n(b) in process with the database, no queue (Engine.decide, Celery eager), {len(bars):,} bars; "
        f"first {WARMUP_ORDERS} orders are warm-up"
    )
    row("floor: SELECT 1 round trip", select1_us())
    row("floor: Engine.decide on a bar that holds", hold_us)
    row("bar -> order.submitted_at (set before the broker call)", to_submitted)
    row("bar -> 'order.sent' audit (after the broker's ack)", to_sent)
    row("Engine.decide wall time, bars that decide (includes the send)", on_bar)
    row("Engine.settle after each bar (off the order's path)", settle_us)
    if missing:
        print(f"  !! {missing} decided orders were not sent")


def bench_worker(bars: list[Bar], env: dict[str, str]) -> None:
    import redis
    from django.conf import settings

    from apps.trading.models import Order
    from tradebot.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("execution")
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        worker = Worker(env, Path(tmp) / "worker.log")
        worker.start(app)
        try:
            # Floors: the bare Redis round trip and a no-op task through the same queue and worker.
            client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
            ping_us = []
            for _ in range(500):
                t0 = time.perf_counter_ns()
                client.ping()
                ping_us.append((time.perf_counter_ns() - t0) / 1000)
            noop_us = []
            for i in range(105):
                t0 = time.perf_counter_ns()
                app.send_task("celery.accumulate", args=(1,), queue="execution").get(timeout=10)
                if i >= 5:
                    noop_us.append((time.perf_counter_ns() - t0) / 1000)

            def wait_sent(timeout: float = 10.0) -> None:
                deadline = time.monotonic() + timeout
                while Order.objects.filter(status__in=IN_FLIGHT).exists():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no send within {timeout:.0f} s:\n{worker.tail()}")
                    time.sleep(0.002)

            arrivals, hold_us, settle_us = replay("bench-worker", bars, wait=wait_sent)
        finally:
            worker.stop()
    to_submitted, to_sent, on_bar, after, to_enqueued, missing = latencies("bench-worker", arrivals)
    print(
        f"\n(c) through Redis and a real Celery worker (solo pool), {len(bars):,} bars; "
        f"first {WARMUP_ORDERS} orders are warm-up; target p99 < 10 ms"
    )
    row("floor: Redis PING round trip", ping_us)
    row("floor: no-op task round trip (send -> worker -> result)", noop_us)
    row("floor: Engine.decide on a bar that holds", hold_us)
    row("engine: Engine.decide wall time (bars that decide)", on_bar)
    row("engine: bar -> decision committed and enqueued", to_enqueued)
    row("queue + worker: enqueued -> order.submitted_at", after)
    row("bar -> order.submitted_at in the worker", to_submitted)
    row("bar -> 'order.sent' audit in the worker (after the ack)", to_sent)
    row("Engine.settle after each bar (off the order's path)", settle_us)
    if missing:
        print(f"  !! {missing} decided orders were not sent")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bars", type=int, default=0, help="limit (b) and (c) to the first N merged bars"
    )
    parser.add_argument("--skip-pure", action="store_true")
    parser.add_argument(
        "--shared-data",
        type=Path,
        metavar="DIR",
        help=f"the shared data set, for (a)'s long series {LONG} "
        f"(default: ${SHARED_DATA_ENV}, else {SHARED_DATA_DEFAULT})",
    )
    parser.add_argument(
        "--sample-dir",
        type=Path,
        metavar="DIR",
        help=f"the {SAMPLE_GLOB} bars replayed by (b) and (c), and by (a) without the long "
        f"series (default: ${SAMPLE_DIR_ENV}, else {SAMPLE_DIR_DEFAULT})",
    )
    args = parser.parse_args()

    sample_dir, _ = data_dir(args.sample_dir, SAMPLE_DIR_ENV, SAMPLE_DIR_DEFAULT)
    sample = sorted(sample_dir.glob(SAMPLE_GLOB))
    require_data(sample or [sample_dir / SAMPLE_GLOB], f"--sample-dir DIR or {SAMPLE_DIR_ENV}")
    print(f"decision latency bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    load_average("start")
    if not args.skip_pure:
        shared, explicit = data_dir(args.shared_data, SHARED_DATA_ENV, SHARED_DATA_DEFAULT)
        long = shared / LONG
        if explicit:
            require_data([long], f"--shared-data DIR or {SHARED_DATA_ENV}")
        elif not long.is_file():
            print(f"(a): {long} not found (--shared-data DIR or {SHARED_DATA_ENV}): sample bars")
        bench_pure([long] if long.is_file() else sample)

    os.environ.setdefault("ENVIRONMENT", "test")
    redis_url = redis_db_url(
        os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1",
        int(os.environ.get("BENCH_REDIS_DB", "15")),
    )
    settings_env = {
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CHANNELS_REDIS_URL": redis_url,
        # The replay runs ~100 bars a second of wall time, so the orders-per-minute guard
        # (wall clock, ceiling 60) would deny a third of the decisions; the check still runs.
        "RISK_CEILING_MAX_ORDERS_PER_MINUTE": os.environ.get(
            "RISK_CEILING_MAX_ORDERS_PER_MINUTE", "1000000"
        ),
    }
    os.environ.update(settings_env)
    with bench_database("decision") as bench_url:
        env = {**os.environ, "DATABASE_URL": bench_url, "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # eager tasks log each run
        bars = list(merged(sample))
        if args.bars:
            bars = bars[: args.bars]
        print(f"Redis {redis_url}, database {database_name(bench_url)}")
        load_average("before (b)")
        bench_eager(bars)
        flush_database()
        load_average("before (c)")
        bench_worker(bars, env)
        load_average("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
