"""Cancel one order (an interface's request: the MCP trading server's ``order_cancel``)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.model.orders import OPEN_STATUSES, OrderStatus
from apps.model.venues import VenueError
from apps.trading import realtime
from apps.trading.models import Order
from apps.trading.services.common import KILL_ORDER_PREFIX, set_status, venue_for
from apps.trading.venues.mapping import venue_order


class OrderCancelRefused(Exception):
    """The order cannot be cancelled (not open, the kill switch's own, the broker refused)."""


def order_cancel(*, order_id: int, actor: str, reason: str) -> Order:
    """Cancel one open order, as ``orders_cancel_all`` does each: never sent (INITIALIZED):
    DENIED; sent: cancelled through the venue (the paper broker's cancel is final at once,
    a real broker's is PENDING_CANCEL until it confirms). One audit row.

    Raises ``OrderCancelRefused`` (nothing changed) for an order that is not open, a kill
    switch closing order, or a cancel the broker refused.
    """
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .select_related("account", "instrument")
            .get(pk=order_id)
        )
        if order.status not in OPEN_STATUSES:
            raise OrderCancelRefused(f"order {order.client_order_id} is {order.status}, not open")
        if order.client_order_id.startswith(KILL_ORDER_PREFIX):
            raise OrderCancelRefused(f"order {order.client_order_id} is the kill switch's own")
        status = OrderStatus(order.status)
        if status is OrderStatus.INITIALIZED:
            set_status(order, OrderStatus.DENIED, f"{reason} (never sent)")
        else:
            venue = venue_for(order.account, purpose="control")
            try:
                venue.cancel(venue_order(order))
            except VenueError as exc:
                raise OrderCancelRefused(f"the broker refused the cancel: {exc}") from exc
            if venue.cancel_is_immediate or status is OrderStatus.SUBMITTED:
                set_status(order, OrderStatus.CANCELED, reason)
            elif status is not OrderStatus.PENDING_CANCEL:
                set_status(order, OrderStatus.PENDING_CANCEL, reason)
        order.updated_at = timezone.now()
        order.save(update_fields=["status", "status_reason", "updated_at"])
        audit_record(
            actor=actor,
            action="order.cancel",
            target=order.client_order_id,
            data={"reason": reason, "status": order.status, "account": order.account.name},
        )
        realtime.broadcast_order(order)
    return order
