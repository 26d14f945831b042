"""KILL with the Celery execution worker down: the latch alone blocks every order, and the
kill switch still cancels and closes at the paper broker (inline, no Celery)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.marketdata.services import instrument_get_or_create
from apps.model.orders import OrderStatus
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get
from apps.strategies.domain.base import SignalAction
from apps.trading.models import Order, Position
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.fills import fill_apply
from apps.trading.services.kill_switch import kill_switch_engage
from apps.trading.venues.paper import PaperVenue
from tests.integration.conftest import CeleryWorker, wait_for
from tests.integration.test_execution_worker import (
    SYMBOL,
    T0,
    _bar,
    _decide,
    _sent_events,
    _settled,
)

pytestmark = pytest.mark.integration


def test_kill_with_worker_stopped_blocks_queued_orders_and_flattens(worker: CeleryWorker) -> None:
    # Arrange: a long position (bought through the worker, filled by the next bar) ...
    account = account_get_or_create(name="integration-kill")
    instrument_get_or_create(symbol=SYMBOL)
    buy = _decide(account, SignalAction.ENTER_LONG)
    wait_for(lambda: _settled(buy), what="the buy to be accepted", worker=worker)
    fills = PaperVenue().match(_bar(T0 + timedelta(minutes=1), Decimal("7430.00")))
    assert [fill_apply(fill=f) is not None for f in fills] == [True]
    Position.objects.filter(account=account).update(last_price=Decimal("7440.00"))
    # ... then the worker dies, and a second account's order waits in the backlog.
    worker.stop()
    other = account_get_or_create(name="integration-kill-2")
    queued = _decide(other, SignalAction.ENTER_LONG)
    assert queued.status == OrderStatus.INITIALIZED

    # Act: KILL with no worker running.
    report = kill_switch_engage(actor="cli:root", source="cli", reason="worker down drill")

    # Assert: latched, queued order denied, the position closed at the last mark, inline.
    assert system_mode_get() is SystemMode.KILL
    assert report.flat
    assert len(report.closing_orders) == 1
    position = Position.objects.get(account=account)
    assert position.quantity == 0
    close = Order.objects.get(client_order_id=report.closing_orders[0])
    assert (close.status, close.avg_fill_price) == ("filled", Decimal("7440.00"))
    queued.refresh_from_db()
    assert queued.status == OrderStatus.DENIED

    # And when the worker comes back, the backlog sends nothing.
    late = _decide(account, SignalAction.ENTER_LONG, ts=T0 + timedelta(minutes=2))
    assert late.status == OrderStatus.DENIED  # decided in KILL: denied at decision time
    worker.start()
    wait_for(
        lambda: (
            "trading.order_send[" in worker.log_tail(10_000)
            and "succeeded" in worker.log_tail(10_000)
        ),
        what="the restarted worker to run the backlogged task",
        worker=worker,
    )
    queued.refresh_from_db()
    assert queued.status == OrderStatus.DENIED
    assert _sent_events(queued) == []
    assert not AuditEvent.objects.filter(
        action="order.sent", target__in=[queued.client_order_id, late.client_order_id]
    ).exists()


def test_order_queued_before_kill_is_denied_by_the_real_worker(worker: CeleryWorker) -> None:
    # Arrange: an order queued in NORMAL while the worker is stopped; the KILL row is
    # then set directly (as a crashed kill switch would leave it: latched, no sweep yet).
    from apps.risk.models import SystemState

    account = account_get_or_create(name="integration-kill-latch")
    instrument_get_or_create(symbol=SYMBOL)
    worker.stop()
    order = _decide(account, SignalAction.ENTER_LONG)
    SystemState.objects.filter(pk=1).update(mode=SystemMode.KILL.value)

    # Act
    worker.start()
    wait_for(
        lambda: _settled(order), what=f"order {order.client_order_id} to settle", worker=worker
    )

    # Assert: the worker's order_send read the latch under lock and sent nothing.
    order.refresh_from_db()
    assert order.status == OrderStatus.DENIED
    assert "mode kill at send time" in order.status_reason
    assert _sent_events(order) == []
