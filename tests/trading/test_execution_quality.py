from decimal import Decimal

import pytest

from apps.trading.models import Order


@pytest.mark.parametrize(
    ("side", "decision", "avg", "expected"),
    [
        ("buy", "100", "100.05", Decimal("5.00")),  # paid 5 bps more: a cost
        ("sell", "100", "100.05", Decimal("-5.00")),  # received more: a gain
        ("sell", "200", "199.9", Decimal("5.00")),
        ("buy", "100", None, None),  # not filled yet
        ("buy", None, "100", None),  # no decision price (a manual order)
    ],
)
def test_slippage_bps_when_filled_then_signed_as_a_cost(side, decision, avg, expected) -> None:
    order = Order(
        side=side,
        quantity=Decimal("2"),
        filled_quantity=Decimal("0.5"),
        decision_price=Decimal(decision) if decision else None,
        avg_fill_price=Decimal(avg) if avg else None,
    )
    assert order.slippage_bps == expected
    assert order.fill_rate == Decimal("0.25")
