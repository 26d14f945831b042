from __future__ import annotations

from decimal import Decimal as D

from apps.model.intents import entry_intent, exit_intent
from apps.model.values import OrderType, Side
from apps.risk.domain.checks import is_exposure_reducing


def test_entry_intent_when_built_then_market_buy_of_the_sized_quantity() -> None:
    intent = entry_intent(
        instrument="BTC-USD", quantity=D("0.5"), decision_price=D(100), reason="r"
    )

    assert (intent.side, intent.order_type, intent.quantity) == (
        Side.BUY,
        OrderType.MARKET,
        D("0.5"),
    )
    assert intent.reduce_only is False
    assert intent.decision_price == D(100)


def test_exit_intent_when_long_then_sells_everything_reduce_only() -> None:
    intent = exit_intent(
        instrument="BTC-USD", position_quantity=D(3), decision_price=D(90), reason="r"
    )

    assert (intent.side, intent.quantity, intent.reduce_only) == (Side.SELL, D(3), True)
    assert is_exposure_reducing(intent, D(3))
