"""The order intents a long-only strategy's signals become, for the backtest and the engine.

Both call these, so an entry and an exit mean the same order in a backtest and live.
"""

from __future__ import annotations

from decimal import Decimal

from apps.model.orders import OrderIntent
from apps.model.values import Side


def entry_intent(
    *, instrument: str, quantity: Decimal, decision_price: Decimal, reason: str
) -> OrderIntent:
    """Buy ``quantity`` at market (the caller sized it from its stake)."""
    return OrderIntent(
        instrument=instrument,
        side=Side.BUY,
        quantity=quantity,
        decision_price=decision_price,
        reason=reason,
    )


def exit_intent(
    *, instrument: str, position_quantity: Decimal, decision_price: Decimal, reason: str
) -> OrderIntent:
    """Sell the whole long position at market; reduce-only, so it passes PAUSE and KILL gates."""
    return OrderIntent(
        instrument=instrument,
        side=Side.SELL,
        quantity=position_quantity,
        decision_price=decision_price,
        reduce_only=True,
        reason=reason,
    )
