"""The engine decides first and keeps its books after: an order never waits for bookkeeping.

``Engine.decide`` is the bar's critical path (paper fills, decisions, the stored bar, one
commit: orders leave); ``Engine.settle`` is the bookkeeping (feed status, marks, equity rules),
which the live loop runs once no bar is waiting, once per series and account per drain.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.engine.feeds.base import LiveFeed
from apps.engine.live import LiveLoop
from apps.engine.management.commands.run_engine import engine_plans
from apps.engine.runner import Engine
from apps.engine.selectors import plans_active
from apps.engine.services import plan_create
from apps.marketdata.models import Bar as BarRow
from apps.marketdata.models import FeedStatus
from apps.marketdata.services import instrument_get_or_create
from apps.model.bars import Bar
from apps.risk.models import EquityMonitor
from apps.trading.models import Order
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
SYMBOLS = ("BTC-USD", "ETH-USD", "LTC-USD")


def plans(symbols=SYMBOLS, params=None):  # noqa: ANN001, ANN201
    account = paper_account("100000", max_order="2000")
    for symbol in symbols:
        instrument_get_or_create(symbol=symbol)
        plan_create(
            account=account,
            venue="paper",
            instrument=symbol,
            timeframe="1m",
            strategy="sma_cross",
            params=params or {"fast": "2", "slow": "3"},
            stake=Decimal("1000"),
            actor="test",
        )
    return engine_plans(plans_active())


def bar(symbol: str, minute: int, close: str) -> Bar:
    c = Decimal(close)
    return Bar(symbol, T0 + timedelta(minutes=minute), c, c + 1, c - 1, c, Decimal(10))


class Burst(LiveFeed):
    """Pushes its bars at once, as feeds do when several series close on the same minute."""

    name = "burst"

    def __init__(self, subscriptions, sink, bars) -> None:  # noqa: ANN001
        super().__init__(subscriptions, sink)
        self.bars = bars

    def run(self, stop: threading.Event) -> None:
        for b in self.bars:
            self.sink.on_bar(self.name, "1m", b)


class Spy:
    """Records the order of the engine's decide and settle calls (the real ones run)."""

    def __init__(self, engine: Engine) -> None:
        self.calls: list[str] = []
        decide, settle = engine.decide, engine.settle

        def spy_decide(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            self.calls.append("decide")
            return decide(*args, **kwargs)

        def spy_settle():  # noqa: ANN202
            self.calls.append("settle")
            settle()

        engine.decide = spy_decide  # type: ignore[method-assign]
        engine.settle = spy_settle  # type: ignore[method-assign]


def run_loop(engine: Engine, bars: list[Bar], **kw) -> LiveLoop:  # noqa: ANN003
    loop = LiveLoop(
        engine,
        feeds_factory=lambda subs, sink: [Burst(subs, sink, bars)],
        max_bars=len(bars),
        housekeeping_every=60,
        **kw,
    )
    loop.run()
    return loop


def test_decide_when_a_bar_decides_then_the_order_leaves_before_any_bookkeeping(
    eager_celery,
) -> None:
    engine = Engine(plans=plans(("BTC-USD",)))
    for minute, close in enumerate(("100", "100", "100", "99.9")):
        engine.on_bar("replay", "1m", bar("BTC-USD", minute, close))
    status = FeedStatus.objects.get(feed="replay:BTC-USD:1m")
    monitor_ts = EquityMonitor.objects.get().ts

    assert engine.decide("replay", "1m", bar("BTC-USD", 4, "100.3"))  # fast crosses slow

    order = Order.objects.get()
    assert order.status == "accepted", order.status_reason  # sent on commit (eager)
    assert engine.unsettled
    assert FeedStatus.objects.get(pk=status.pk).bars_accepted == status.bars_accepted
    assert EquityMonitor.objects.get().ts == monitor_ts

    engine.settle()

    assert not engine.unsettled
    after = FeedStatus.objects.get(pk=status.pk)
    assert after.bars_accepted == status.bars_accepted + 1
    assert after.last_bar_ts == T0 + timedelta(minutes=4)
    assert EquityMonitor.objects.get().ts == T0 + timedelta(minutes=4)


def test_live_loop_when_three_series_close_together_then_all_decided_then_settled_once(
    eager_celery,
) -> None:
    engine = Engine(plans=plans())
    spy = Spy(engine)
    bars = [bar(symbol, 0, "100") for symbol in SYMBOLS]

    run_loop(engine, bars, settle_delay=0.5)

    assert spy.calls == ["decide", "decide", "decide", "settle"]
    for symbol in SYMBOLS:
        status = FeedStatus.objects.get(feed=f"burst:{symbol}:1m")
        assert (status.bars_accepted, status.last_bar_ts) == (1, T0)
    assert EquityMonitor.objects.get().ts == T0


def test_live_loop_when_a_backlog_then_settled_every_second_not_every_bar(eager_celery) -> None:
    engine = Engine(plans=plans(("BTC-USD",), params={"fast": "5", "slow": "20"}))
    spy = Spy(engine)
    closes = [100 + (i % 40) - 20 * ((i // 40) % 2) for i in range(600)]
    bars = [bar("BTC-USD", i, str(c)) for i, c in enumerate(closes)]

    run_loop(engine, bars, settle_delay=0.1, settle_every=0.05)
    slow = spy.calls.count("settle")
    assert spy.calls.count("decide") == 600
    assert 1 <= slow < 100  # a backlog: bookkeeping batched, never per bar

    status = FeedStatus.objects.get(feed="burst:BTC-USD:1m")
    assert status.bars_accepted == BarRow.objects.count() == 600
    assert status.last_bar_ts == T0 + timedelta(minutes=599)
    assert EquityMonitor.objects.get().ts == T0 + timedelta(minutes=599)
