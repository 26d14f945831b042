"""What the trading services share: the database quantum, client order ids, the venue of an account, order status changes."""

from __future__ import annotations

import logging
import uuid
from decimal import ROUND_HALF_EVEN, Decimal

from apps.accounts.models import Account
from apps.marketdata.models import Instrument
from apps.model.orders import OrderIntent, OrderStateError, OrderStatus, transition
from apps.model.values import Instrument as InstrumentSpec
from apps.model.values import OrderType, Side
from apps.model.venues import (
    Venue,
)
from apps.trading.models import Order

logger = logging.getLogger(__name__)

# The database keeps 12 decimal places; quantities are cut (never rounded up) to it
# and money is rounded half-even to it, explicitly, before anything is stored.
DB_QUANTUM = Decimal("1e-12")
# The kill switch's own closing orders: the only orders KILL lets out (see check_mode).
KILL_ORDER_PREFIX = "tb-kill-"


def new_client_order_id() -> str:
    return f"tb-{uuid.uuid4().hex}"


def money(value: Decimal) -> Decimal:
    return value.quantize(DB_QUANTUM, rounding=ROUND_HALF_EVEN)


def instrument_spec(instrument: Instrument) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=instrument.symbol,
        base=instrument.base,
        quote=instrument.quote,
        tick_size=instrument.tick_size,
        lot_size=instrument.lot_size,
    )


def venue_for(account: Account, *, purpose: str = "execution") -> Venue:
    """The account's broker adapter (apps.trading.venues.factory: settings + credentials)."""
    from apps.trading.venues.factory import venue_get

    return venue_get(account, purpose=purpose)


def set_status(order: Order, new: OrderStatus, reason: str = "") -> None:
    order.status = transition(OrderStatus(order.status), new).value
    if reason:
        order.status_reason = reason


def order_intent(order: Order) -> OrderIntent:
    """The intent an order row carries (what the mode gate judges at send time)."""
    return OrderIntent(
        instrument=order.instrument.symbol,
        side=Side(order.side),
        quantity=order.quantity,
        order_type=OrderType(order.order_type),
        limit_price=order.limit_price,
        reduce_only=order.reduce_only,
    )


# Broadcasting every one of hundreds of order updates at once floods the channel layer;
# past this many, the panel gets the first ones and reloads the rest on mode.changed.
BULK_BROADCAST_LIMIT = 50


def status_move(order: Order, new: OrderStatus, reason: str) -> bool:
    """Move ``order`` (locked) to ``new`` when the edge is legal; False when it is not (or it
    is there already). Reconciliation settles orders through this; ``set_status`` is the
    strict form that raises on an illegal edge."""
    current = OrderStatus(order.status)
    if current is new:
        return False
    try:
        order.status = transition(current, new).value
    except OrderStateError:
        return False
    order.status_reason = reason
    return True
