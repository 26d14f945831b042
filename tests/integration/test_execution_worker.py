"""The execution queue end to end: decision_make -> Redis -> a real Celery worker -> order_send.

Everything is set up through services and committed (``transactional_db``), because
the worker is another process with its own connection to the test database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from itertools import islice
from pathlib import Path

import pytest
from django.conf import settings

from apps.accounts.models import Account
from apps.audit.models import AuditEvent, DecisionAction, DecisionLog
from apps.engine.runner import Engine
from apps.marketdata.domain.csvfile import read_bars
from apps.marketdata.services import instrument_get_or_create
from apps.model.bars import Bar
from apps.model.orders import OrderStatus
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeSource
from apps.risk.services.modes import system_mode_set
from apps.strategies.domain.base import Signal, SignalAction
from apps.strategies.domain.sma_cross import SmaCross
from apps.trading.models import Fill, Order, Position
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.decisions import decision_make
from apps.trading.services.fills import fill_apply
from apps.trading.tasks import order_send as order_send_task
from apps.trading.venues.paper import PaperVenue
from tests.integration.conftest import CeleryWorker, wait_for

pytestmark = pytest.mark.integration

BTC_CSV = Path(__file__).resolve().parents[2] / "data" / "sample" / "BTC-USD_1m_coinbase.csv"
SYMBOL = "BTC-USD"
STAKE = Decimal("1000")
PARAMS = {"fast": 10, "slow": 30}
Q12 = Decimal("1e-12")
T0 = datetime(2018, 4, 4, tzinfo=UTC)
# Decided but not yet acknowledged by the broker: the paper book only matches ACCEPTED orders.
IN_FLIGHT = (OrderStatus.INITIALIZED.value, OrderStatus.SUBMITTED.value)


def _signal(action: SignalAction, price: Decimal, ts: datetime = T0) -> Signal:
    return Signal(
        instrument=SYMBOL, ts=ts, action=action, price=price, inputs={"test": "integration"}
    )


def _decide(
    account: Account, action: SignalAction, price: Decimal = Decimal("7422.00"), ts: datetime = T0
) -> Order:
    outcome = decision_make(
        account=account,
        signal=_signal(action, price, ts),
        strategy="sma_cross",
        strategy_params=PARAMS,
        stake=STAKE,
        source="integration-test",
        reference_price=price,
        reference_ts=ts,
    )
    assert outcome.order is not None, f"no order decided: {outcome.decision.inputs}"
    return outcome.order


def _settled(order: Order) -> Order | None:
    """The order once the worker has moved it on from INITIALIZED/SUBMITTED, else None."""
    order.refresh_from_db()
    return order if order.status not in IN_FLIGHT else None


def _sent_events(order: Order) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="order.sent", target=order.client_order_id))


def _pause() -> None:
    system_mode_set(
        mode=SystemMode.PAUSE,
        actor="integration-test",
        source=ModeSource.SYSTEM,
        reason="pause while an order waits in the queue",
    )


def _bar(ts: datetime, price: Decimal) -> Bar:
    return Bar(
        instrument=SYMBOL,
        ts=ts,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=Decimal(100),
    )


def test_order_send_when_delivered_three_times_then_sends_exactly_one_order(worker: CeleryWorker):
    # Arrange: decision_make enqueues order_send on commit (delivery 1).
    account = account_get_or_create(name="integration-dup")
    instrument_get_or_create(symbol=SYMBOL)
    order = _decide(account, SignalAction.ENTER_LONG)

    # Act: the same task twice more, with one shared task id (a broker redelivery).
    task_id = str(uuid.uuid4())
    order_send_task.apply_async(kwargs={"order_id": order.pk}, task_id=task_id)
    order_send_task.apply_async(kwargs={"order_id": order.pk}, task_id=task_id)

    # Assert
    wait_for(
        lambda: _settled(order), what=f"order {order.client_order_id} to settle", worker=worker
    )
    wait_for(
        lambda: worker.log_tail(10_000).count(f"trading.order_send[{task_id}] succeeded") == 2,
        what="both redeliveries to run",
        worker=worker,
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.ACCEPTED
    assert order.broker_order_id == f"paper-{order.client_order_id}"
    assert order.submitted_at is not None
    sent = _sent_events(order)
    assert len(sent) == 1, [e.data for e in sent]
    assert sent[0].data["broker_order_id"] == order.broker_order_id
    assert list(
        Order.objects.filter(account=account).values_list("broker_order_id", flat=True)
    ) == [order.broker_order_id]


def test_order_send_when_mode_paused_before_task_consumed_then_denies_order(worker: CeleryWorker):
    # Arrange: the order is decided in NORMAL while no worker consumes the queue.
    account = account_get_or_create(name="integration-pause")
    instrument_get_or_create(symbol=SYMBOL)
    worker.stop()
    order = _decide(account, SignalAction.ENTER_LONG)
    assert order.status == OrderStatus.INITIALIZED
    _pause()

    # Act: the task is consumed only now, in PAUSE.
    worker.start()
    wait_for(
        lambda: _settled(order), what=f"order {order.client_order_id} to settle", worker=worker
    )

    # Assert: denied at the last moment, nothing sent.
    order.refresh_from_db()
    assert order.status == OrderStatus.DENIED
    assert "mode pause" in order.status_reason
    assert order.broker_order_id is None
    assert _sent_events(order) == []
    assert (
        AuditEvent.objects.filter(
            action="order.denied_at_send", target=order.client_order_id
        ).count()
        == 1
    )


def test_order_send_when_paused_and_order_reduces_exposure_then_sends_it(worker: CeleryWorker):
    # Arrange: a long position (bought in NORMAL through the worker, filled by the next bar) ...
    account = account_get_or_create(name="integration-pause-sell")
    instrument_get_or_create(symbol=SYMBOL)
    buy = _decide(account, SignalAction.ENTER_LONG)
    wait_for(lambda: _settled(buy), what="the buy to be accepted", worker=worker)
    assert buy.status == OrderStatus.ACCEPTED
    fills = PaperVenue().match(_bar(T0 + timedelta(minutes=1), Decimal("7430.00")))
    assert [fill_apply(fill=f) is not None for f in fills] == [True]
    position = Position.objects.get(account=account, instrument__symbol=SYMBOL)
    assert position.quantity == buy.quantity
    # ... and a sell of all of it queued in NORMAL, consumed after PAUSE.
    worker.stop()
    sell = _decide(account, SignalAction.EXIT_LONG, Decimal("7431.00"), T0 + timedelta(minutes=1))
    assert (sell.side, sell.quantity, sell.reduce_only) == ("sell", position.quantity, True)
    _pause()

    # Act
    worker.start()
    wait_for(lambda: _settled(sell), what=f"order {sell.client_order_id} to settle", worker=worker)

    # Assert
    sell.refresh_from_db()
    assert sell.status == OrderStatus.ACCEPTED, sell.status_reason
    assert sell.broker_order_id == f"paper-{sell.client_order_id}"
    assert len(_sent_events(sell)) == 1


def _first_entry_index(bars: list[Bar]) -> int:
    strategy = SmaCross(**PARAMS)
    for i, bar in enumerate(bars):
        if strategy.on_bar(bar).action is SignalAction.ENTER_LONG:
            return i
    raise AssertionError("sma_cross(10, 30) never enters on the sample data")


def test_engine_when_sma_cross_enters_then_worker_sends_and_next_bar_fills(worker: CeleryWorker):
    # Arrange: real recorded bars up to the first entry signal, plus the bar that fills it.
    bars = list(islice(read_bars(BTC_CSV), 500))
    entry = _first_entry_index(bars)
    assert entry + 1 < len(bars)
    account = account_get_or_create(name="integration-engine")
    starting_cash = account.cash
    engine = Engine.for_account(
        account=account,
        strategy_factory=lambda: SmaCross(**PARAMS),
        strategy_name="sma_cross",
        strategy_params=PARAMS,
        stake=STAKE,
    )

    # Act: the live loop, waiting for the asynchronous send before the next bar.
    for bar in bars[: entry + 2]:
        engine.on_bar(bar)
        wait_for(
            lambda: not Order.objects.filter(account=account, status__in=IN_FLIGHT).exists(),
            what="the worker to send the order",
            worker=worker,
        )

    # Assert: one order, decided on the entry bar, sent by the worker, filled at the next open.
    decided, filler = bars[entry], bars[entry + 1]
    order = Order.objects.get(account=account)
    assert order.decision_bar_ts == decided.ts
    assert order.broker_order_id == f"paper-{order.client_order_id}"
    assert len(_sent_events(order)) == 1
    expected_qty = (STAKE / decided.close).quantize(Q12, rounding=ROUND_DOWN)
    assert order.quantity == expected_qty
    assert order.status == OrderStatus.FILLED

    fill = Fill.objects.get(order=order)
    assert settings.PAPER_SLIPPAGE_BPS == 0
    assert fill.price == filler.open
    assert fill.ts == filler.ts
    notional = expected_qty * filler.open
    expected_fee = (notional * settings.PAPER_FEE_RATE).quantize(Q12, rounding=ROUND_HALF_EVEN)
    assert fill.fee == expected_fee

    position = Position.objects.get(account=account, instrument__symbol=SYMBOL)
    assert position.quantity == expected_qty
    account.refresh_from_db()
    expected_cash = (starting_cash - notional - expected_fee).quantize(
        Q12, rounding=ROUND_HALF_EVEN
    )
    assert account.cash == expected_cash
    assert account.fees_paid == expected_fee

    decision = DecisionLog.objects.get(action=DecisionAction.BUY, account=account.name)
    assert decision.bar_ts == decided.ts
    assert decision.order_ids == [order.client_order_id]
