"""The outbox: orders recorded but never handed to the execution queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.model.orders import OrderStatus, transition
from apps.trading import realtime
from apps.trading.models import Order

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    requeued: tuple[str, ...]
    expired: tuple[str, ...]


def orders_outbox_sweep(*, now: datetime | None = None) -> SweepResult:
    """Orders recorded but never handed to the queue: re-enqueue fresh ones, refuse stale ones.

    ``order_send`` is idempotent (only an INITIALIZED order is sent, under its row
    lock), so re-enqueueing an order whose first message is merely slow sends nothing
    twice. An order older than ORDER_OUTBOX_MAX_AGE_SECONDS is a stale decision: it is
    DENIED with the reason, never sent.
    """
    from apps.trading.tasks import order_send as order_send_task  # tasks import services

    now = now or timezone.now()
    fresh_after = now - timedelta(seconds=settings.ORDER_OUTBOX_MAX_AGE_SECONDS)
    settle_before = now - timedelta(seconds=settings.ORDER_OUTBOX_MIN_AGE_SECONDS)
    expired: list[str] = []
    with transaction.atomic():
        for order in Order.objects.select_for_update(skip_locked=True).filter(
            status=OrderStatus.INITIALIZED, created_at__lt=fresh_after
        ):
            order.status = transition(OrderStatus.INITIALIZED, OrderStatus.DENIED).value
            order.status_reason = (
                f"not sent within {settings.ORDER_OUTBOX_MAX_AGE_SECONDS} s (queue unavailable): "
                "a stale decision is never sent"
            )
            order.save(update_fields=["status", "status_reason", "updated_at"])
            expired.append(order.client_order_id)
            realtime.broadcast_order(order)
        if expired:
            audit_record(
                actor="outbox", action="orders.stale_denied", target="", data={"orders": expired}
            )
    requeue = list(
        Order.objects.filter(
            status=OrderStatus.INITIALIZED,
            created_at__gte=fresh_after,
            created_at__lt=settle_before,
        ).values_list("pk", "client_order_id")
    )
    for pk, _cid in requeue:
        order_send_task.delay(order_id=pk)
    if requeue:
        logger.warning("outbox: re-enqueued %d unsent orders", len(requeue))
    return SweepResult(tuple(c for _, c in requeue), tuple(expired))
