from __future__ import annotations

from decimal import Decimal as D

import pytest

from apps.audit.models import AuditEvent, DecisionLog
from apps.model.orders import Fill as FillValue
from apps.model.values import Side
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_set
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.models import Order
from apps.trading.services.decisions import decision_make
from apps.trading.services.fills import fill_apply
from apps.trading.services.kill_switch import kill_switch_engage
from apps.trading.services.orders import order_send
from tests.trading.factories import T0, accepted_order, instrument, paper_account

pytestmark = pytest.mark.django_db

PARAMS = {"fast": 10, "slow": 30}


def signal(action: SignalAction, price: str = "100", symbol: str = "BTC-USD") -> Signal:
    return Signal(
        instrument=symbol,
        ts=T0,
        action=action,
        price=D(price),
        inputs={"fast_sma": "101", "slow_sma": "99"},
    )


def decide(account, action=SignalAction.ENTER_LONG, price="100", stake="1000"):  # noqa: ANN001, ANN201
    """A decision with the market's reference price given as the engine gives it: the
    signal's own close, seen at the signal's time (the collar and reference checks pass)."""
    return decision_make(
        account=account,
        signal=signal(action, price),
        strategy="sma_cross",
        strategy_params=PARAMS,
        stake=D(stake),
        reference_price=D(price),
        reference_ts=T0,
    )


def hold_long(account, qty: str = "5") -> None:  # noqa: ANN001
    order = accepted_order(account, instrument(), quantity=qty)
    fill_apply(
        fill=FillValue(
            trade_id=f"seed-{qty}",
            client_order_id=order.client_order_id,
            instrument="BTC-USD",
            side=Side.BUY,
            quantity=D(qty),
            price=D("100"),
            fee=D(0),
            ts=T0,
        )
    )


def test_decision_when_normal_and_within_limits_then_order_initialized_and_send_enqueued(
    django_capture_on_commit_callbacks,
) -> None:
    account = paper_account()
    instrument()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = decide(account)

    order = outcome.order
    assert order is not None
    assert order.status == "initialized"
    assert order.quantity == D(10)  # stake 1000 / price 100
    decision = outcome.decision
    assert decision.action == "buy"
    assert decision.check_result == "passed"
    assert decision.order_ids == [order.client_order_id]
    assert {c["name"] for c in decision.checks} >= {
        "mode_gate",
        "max_order_notional",
        "max_position",
    }
    assert decision.inputs["close"] == "100"
    # enqueue of the execution task + panel broadcasts, all after commit
    assert len(callbacks) >= 1


def test_decision_when_order_notional_above_limit_then_denied_and_recorded_with_numbers() -> None:
    account = paper_account(max_order="500")
    instrument()

    outcome = decide(account, stake="1000")

    assert outcome.order.status == "denied"
    assert "max_order_notional" in outcome.order.status_reason
    decision = DecisionLog.objects.get(pk=outcome.decision.pk)
    assert decision.action == "denied"
    assert decision.check_result == "failed"
    assert decision.failed_checks == ["max_order_notional"]
    failed = next(c for c in decision.checks if c["name"] == "max_order_notional")
    assert D(failed["values"]["limit"]) == D("500")
    assert D(failed["values"]["notional"]) == D("1000")


def test_decision_when_observation_then_logged_as_would_have_and_nothing_sent() -> None:
    account = paper_account()
    instrument()
    system_mode_set(mode=SystemMode.OBSERVATION, actor="test", source="cli", reason="test")

    outcome = decide(account)

    assert outcome.order is None
    assert outcome.decision.action == "would_buy"
    assert not Order.objects.exists()


def test_decision_when_pause_then_entry_denied_but_exit_passes() -> None:
    account = paper_account()
    hold_long(account, "5")
    system_mode_set(mode=SystemMode.PAUSE, actor="test", source="cli", reason="test")

    exit_outcome = decide(account, SignalAction.EXIT_LONG)

    assert exit_outcome.decision.action == "sell"
    assert exit_outcome.order.quantity == D(5)
    assert exit_outcome.order.reduce_only


def test_decision_when_already_long_then_hold_recorded_without_order() -> None:
    account = paper_account()
    hold_long(account, "5")

    outcome = decide(account, SignalAction.ENTER_LONG)

    assert outcome.order is None
    assert outcome.decision.action == "hold"
    assert outcome.decision.inputs["hold_reason"] == "already long"


def test_order_send_when_called_twice_then_sent_once() -> None:
    account = paper_account()
    instrument()
    order = decide(account).order

    first = order_send(order_id=order.pk)
    second = order_send(order_id=order.pk)

    assert first.status == second.status == "accepted"
    assert first.broker_order_id == f"paper-{order.client_order_id}"
    assert AuditEvent.objects.filter(action="order.sent", target=order.client_order_id).count() == 1


def test_order_send_when_mode_became_kill_after_decision_then_not_sent() -> None:
    account = paper_account()
    instrument()
    order = decide(account).order
    kill_switch_engage(actor="test", source="cli", reason="test")

    sent = order_send(order_id=order.pk)

    assert sent.status == "denied"
    # The kill switch itself denies the queued order (it never left); order_send finds
    # it denied and sends nothing.
    assert "kill switch" in sent.status_reason
    assert not AuditEvent.objects.filter(action="order.sent").exists()
