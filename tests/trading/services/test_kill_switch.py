"""kill_switch_engage and the last-moment gate in order_send (service level, paper broker)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from apps.accounts.models import Account
from apps.audit.models import AuditEvent
from apps.model.orders import Fill as FillValue
from apps.model.values import Side
from apps.notifications.models import Alert
from apps.risk.domain.modes import SystemMode
from apps.risk.exceptions import ModeChangeRefused
from apps.risk.models import Incident
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.models import Order, Position
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.common import KILL_ORDER_PREFIX, new_client_order_id
from apps.trading.services.fills import fill_apply
from apps.trading.services.kill_switch import kill_switch_engage
from apps.trading.services.orders import order_send
from tests.trading.factories import T0, accepted_order, instrument, paper_account

pytestmark = pytest.mark.django_db


def hold(
    account: Account, symbol: str, qty: str, price: str = "100", mark: str | None = None
) -> None:
    """A position built through fill_apply (long for qty > 0, short below)."""
    side = "buy" if D(qty) > 0 else "sell"
    order = accepted_order(account, instrument(symbol), side=side, quantity=str(abs(D(qty))))
    fill_apply(
        fill=FillValue(
            trade_id=f"seed-{order.client_order_id}",
            client_order_id=order.client_order_id,
            instrument=symbol,
            side=Side(side),
            quantity=abs(D(qty)),
            price=D(price),
            fee=D(0),
            ts=T0,
        )
    )
    if mark is not None:
        Position.objects.filter(account=account, instrument__symbol=symbol).update(
            last_price=D(mark)
        )


def queued(
    account: Account,
    *,
    side: str = "buy",
    quantity: str = "1",
    symbol: str = "BTC-USD",
    reduce_only: bool = False,
    prefix: str = "",
) -> Order:
    return Order.objects.create(
        account=account,
        instrument=instrument(symbol),
        client_order_id=prefix + new_client_order_id(),
        side=side,
        order_type="market",
        quantity=D(quantity),
        decision_price=D(100),
        reduce_only=reduce_only,
        status="initialized",
        decision_bar_ts=T0,
    )


def test_kill_cancels_every_open_order_and_flattens_every_position_at_the_paper_broker() -> None:
    # Arrange: two accounts, long and short positions, working and queued orders.
    a = paper_account("100000")
    b = account_get_or_create(name="second", starting_cash=D(50000))
    hold(a, "BTC-USD", "2", "100", mark="110")
    hold(a, "ETH-USD", "-3", "50", mark="40")
    hold(b, "LTC-USD", "5", "20", mark="21")
    working = [accepted_order(a, instrument("BTC-USD")), accepted_order(b, instrument("LTC-USD"))]
    waiting = queued(a)

    # Act
    report = kill_switch_engage(actor="user:ops", source="panel", reason="drill")

    # Assert: latched first, everything cancelled, everything flat at the last marks.
    assert system_mode_get() is SystemMode.KILL
    assert report.mode_persisted_at <= report.cancels_done_at <= report.flat_at
    assert report.cancels_sent == 2
    assert report.orders_denied == 1
    assert report.flat is True
    assert report.errors == ()
    assert len(report.closing_orders) == 3
    for order in working:
        order.refresh_from_db()
        assert order.status == "canceled"
        assert "kill switch" in order.status_reason
    waiting.refresh_from_db()
    assert waiting.status == "denied"
    assert not Position.objects.exclude(quantity=0).exists()
    closes = Order.objects.filter(client_order_id__in=report.closing_orders)
    assert {(o.instrument.symbol, o.side, o.quantity, o.status, o.reduce_only) for o in closes} == {
        ("BTC-USD", "sell", D(2), "filled", True),
        ("ETH-USD", "buy", D(3), "filled", True),
        ("LTC-USD", "sell", D(5), "filled", True),
    }
    btc_close = closes.get(instrument__symbol="BTC-USD")
    assert btc_close.avg_fill_price == D(110)  # the last mark (slippage 0 in tests)
    incident = Incident.objects.get(pk=report.incident_id)
    assert incident.kill_report["flat"] is True
    assert incident.status == "open"
    assert AuditEvent.objects.filter(action="kill.engaged").count() == 1
    assert Alert.objects.get(code="kill_switch").severity == "critical"


def test_kill_twice_sweeps_again_under_the_same_incident() -> None:
    account = paper_account()
    first = kill_switch_engage(actor="a", source="cli", reason="one")
    hold(account, "BTC-USD", "1", mark="100")  # e.g. a late fill of a cancelled order

    second = kill_switch_engage(actor="a", source="cli", reason="two")

    assert second.incident_id == first.incident_id
    assert second.flat
    assert len(second.closing_orders) == 1
    assert Incident.objects.count() == 1
    assert AuditEvent.objects.filter(action="kill.reengaged").count() == 1


def test_kill_without_reason_is_refused_and_audited() -> None:
    with pytest.raises(ModeChangeRefused, match="reason"):
        kill_switch_engage(actor="a", source="panel", reason="")
    assert system_mode_get() is SystemMode.NORMAL
    assert AuditEvent.objects.filter(action="mode.refused").count() == 1


@pytest.mark.parametrize("mode", [SystemMode.PAUSE, SystemMode.KILL])
def test_order_enqueued_before_pause_or_kill_is_not_sent_after_it(mode: SystemMode) -> None:
    # Arrange: an order that adds exposure, queued (INITIALIZED) in NORMAL.
    account = paper_account()
    order = queued(account)

    # Act: the mode changes, then the queued task runs.
    if mode is SystemMode.KILL:
        kill_switch_engage(actor="t", source="cli", reason="stop")
    else:
        system_mode_set(mode=mode, actor="t", source="cli", reason="stop")
    sent = order_send(order_id=order.pk)

    # Assert
    assert sent.status == "denied"
    assert sent.broker_order_id is None
    assert not AuditEvent.objects.filter(action="order.sent").exists()


# The gate at send time: mode x kind of order. Position: long 2.
KINDS = {
    "increase": dict(side="buy", quantity="1"),
    "reduce": dict(side="sell", quantity="1"),
    "closing_reduce_only": dict(side="sell", quantity="2", reduce_only=True),
    "kill_switch_close": dict(
        side="sell", quantity="2", reduce_only=True, prefix=KILL_ORDER_PREFIX
    ),
}
SENT = {
    SystemMode.NORMAL: {"increase", "reduce", "closing_reduce_only", "kill_switch_close"},
    SystemMode.OBSERVATION: set(),
    SystemMode.PAUSE: {"reduce", "closing_reduce_only", "kill_switch_close"},
    SystemMode.KILL: {"kill_switch_close"},
}


@pytest.mark.parametrize(("mode", "kind"), [(m, k) for m in SystemMode for k in KINDS])
def test_order_send_gate_for_each_mode_and_kind_of_order(mode: SystemMode, kind: str) -> None:
    account = paper_account()
    hold(account, "BTC-USD", "2", mark="100")
    if mode is SystemMode.KILL:
        kill_switch_engage(actor="t", source="cli", reason="gate test")
        hold(account, "BTC-USD", "2", mark="100")  # back to long 2 after the sweep
    elif mode is not SystemMode.NORMAL:
        system_mode_set(mode=mode, actor="t", source="cli", reason="gate test")
    order = queued(account, **KINDS[kind])  # queued after the change: checked at send

    sent = order_send(order_id=order.pk)

    if kind in SENT[mode]:
        assert sent.status == "accepted", sent.status_reason
    else:
        assert sent.status == "denied"
        assert f"mode {mode.value} at send time" in sent.status_reason
        assert AuditEvent.objects.filter(
            action="order.denied_at_send", target=order.client_order_id
        ).exists()
