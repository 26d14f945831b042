"""risk_limit_set: ranges from the settings ceilings, audited; decision_make uses every limit."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from apps.audit.models import AuditEvent, DecisionLog
from apps.risk.exceptions import RiskLimitInvalid
from apps.risk.models import RiskLimit
from apps.risk.services.limits import risk_limit_set, risk_limits_for
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.services.decisions import decision_make
from tests.trading.factories import T0, instrument, paper_account

pytestmark = pytest.mark.django_db


def test_limits_set_within_range_are_saved_and_audited_with_old_and_new(settings) -> None:
    account = paper_account()

    row = risk_limit_set(
        account_id=account.pk,
        values={
            "max_open_positions": "3",
            "price_collar_pct": "0.02",
            "max_gross_exposure": "7000",
        },
        actor="user:ops",
    )

    assert (row.max_open_positions, row.price_collar_pct, row.max_gross_exposure) == (
        3,
        D("0.02"),
        D(7000),
    )
    audit = AuditEvent.objects.get(action="risk_limit.set")
    assert audit.data["old"]["max_open_positions"] is None
    assert audit.data["new"] == {
        "max_open_positions": "3",
        "price_collar_pct": "0.02",
        "max_gross_exposure": "7000",
    }
    limits = risk_limits_for(account_id=account.pk)
    assert limits.max_open_positions == 3
    assert limits.max_orders_per_minute == settings.RISK_CEILING_MAX_ORDERS_PER_MINUTE


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"max_order_notional": "1000000000"},
            "max_order_notional",
            "out of range: allowed (0, 100000]",
        ),
        ({"max_order_notional": "0"}, "max_order_notional", "out of range"),
        ({"max_order_notional": ""}, "max_order_notional", "is required"),
        ({"max_open_positions": "2.5"}, "max_open_positions", "whole number"),
        ({"price_collar_pct": "abc"}, "price_collar_pct", "not a number"),
        ({"price_collar_pct": "NaN"}, "price_collar_pct", "finite"),
        ({"max_orders_per_minute": "0"}, "max_orders_per_minute", "allowed [1, 60]"),
        ({"duplicate_window_seconds": "1"}, "duplicate_window_seconds", "allowed [5, 3600]"),
        ({"leverage": "3"}, "leverage", "unknown risk limit 'leverage'"),
        # one bad value refuses the whole request
        (
            {"max_open_positions": "3", "max_gross_exposure": "-1"},
            "max_gross_exposure",
            "out of range",
        ),
    ],
)
def test_out_of_range_limit_is_refused_naming_the_field_audited_nothing_changed(
    values: dict, field: str, message: str
) -> None:
    account = paper_account()
    before = list(RiskLimit.objects.values())

    with pytest.raises(
        RiskLimitInvalid, match=message.replace("(", r"\(").replace("[", r"\[")
    ) as info:
        risk_limit_set(account_id=account.pk, values=values, actor="api:ops")

    assert field in info.value.message
    assert info.value.extra["field"] == field
    assert list(RiskLimit.objects.values()) == before
    refused = AuditEvent.objects.get(action="risk_limit.refused")
    assert refused.data["field"] == field
    assert refused.data["values"] == values


def test_ceilings_cap_rows_above_them_and_the_duplicate_window_has_a_floor(settings) -> None:
    account = paper_account(max_order="999999999")
    RiskLimit.objects.filter(account=account).update(duplicate_window_seconds=1)

    limits = risk_limits_for(account_id=account.pk)

    assert limits.max_order_notional == settings.RISK_CEILING_MAX_ORDER_NOTIONAL
    assert limits.duplicate_window_seconds == settings.RISK_MIN_DUPLICATE_WINDOW_SECONDS


def signal(price: str = "100", action: SignalAction = SignalAction.ENTER_LONG) -> Signal:
    return Signal(instrument="BTC-USD", ts=T0, action=action, price=D(price), inputs={})


def decide(account, stake: str = "1000"):  # noqa: ANN001, ANN201
    return decision_make(
        account=account,
        signal=signal(),
        strategy="sma_cross",
        strategy_params={},
        stake=D(stake),
        reference_price=D(100),
        reference_ts=T0,
    )


def test_decision_denied_by_a_new_limit_is_recorded_with_its_numbers() -> None:
    # Arrange: one open position allowed, one already held elsewhere.
    account = paper_account()
    risk_limit_set(account_id=account.pk, values={"max_open_positions": "0"}, actor="t")
    instrument()

    # Act
    outcome = decide(account)

    # Assert
    assert outcome.order is not None
    assert outcome.order.status == "denied"
    decision = DecisionLog.objects.get(pk=outcome.decision.pk)
    assert decision.action == "denied"
    assert decision.failed_checks == ["max_open_positions"]
    check = next(c for c in decision.checks if c["name"] == "max_open_positions")
    assert check["values"] == {
        "open_positions": "0",
        "opens_new_position": "True",
        "projected_open_positions": "1",
        "limit": "0",
    }
    assert "max_open_positions: 1 > 0" in outcome.order.status_reason
    assert [c["name"] for c in decision.checks][-2:] == ["max_orders_per_minute", "duplicate_order"]


def test_duplicate_decision_within_the_window_is_denied() -> None:
    account = paper_account()
    instrument()
    first = decide(account)
    # The first order is still working, which holds the next signal; cancel it by hand
    first.order.status = "canceled"
    first.order.save(update_fields=["status"])

    second = decide(account)

    assert second.order.status == "denied"
    assert "duplicate_order: same BTC-USD buy 10" in second.order.status_reason
