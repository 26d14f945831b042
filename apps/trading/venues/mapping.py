"""From our ORM rows to the plain values the venue adapters speak."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.model.values import OrderType, Side
from apps.model.venues import VenueOrder

if TYPE_CHECKING:
    from apps.trading.models import Order


def venue_order(order: Order) -> VenueOrder:
    """The adapter's view of an ``Order`` row (with its instrument loaded)."""
    instrument = order.instrument
    return VenueOrder(
        client_order_id=order.client_order_id,
        instrument=instrument.symbol,
        base=instrument.base,
        quote=instrument.quote,
        asset_class=instrument.asset_class,
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        limit_price=order.limit_price,
        reduce_only=order.reduce_only,
        broker_order_id=order.broker_order_id,
        decision_bar_ts=order.decision_bar_ts,
    )
