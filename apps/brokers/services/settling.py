"""Settling: fills re-requested and applied once, in-flight orders asked about, never resent."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.brokers.domain.reconcile import (
    DiscrepancyKind,
    Finding,
    unknown_fill,
)
from apps.brokers.models import (
    BrokerSession,
)
from apps.brokers.services.common import ACTOR_RECONCILIATION
from apps.model.orders import OrderStateError, OrderStatus
from apps.model.venues import (
    BrokerOrder,
    Venue,
)
from apps.trading import realtime
from apps.trading.models import Order
from apps.trading.services.common import status_move
from apps.trading.services.fills import fill_apply
from apps.trading.venues.mapping import venue_order

logger = logging.getLogger(__name__)


# --- settling: fills and in-flight orders ---------------------------------------------------


def settle_from_broker(order_id: int, theirs: BrokerOrder | None, *, never_received: bool) -> bool:
    """Bring one of our sent orders to the broker's status (fills are applied separately)."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        fields = ["status", "status_reason", "updated_at"]
        changed = False
        if theirs is None:
            if never_received and order.status == OrderStatus.SUBMITTED:
                changed = status_move(
                    order,
                    OrderStatus.CANCELED,
                    "never reached the broker (status query found nothing); not resent",
                )
        else:
            if order.broker_order_id != theirs.broker_order_id:
                order.broker_order_id = theirs.broker_order_id
                fields.append("broker_order_id")
                changed = True
            target = theirs.status
            filled_matches = order.filled_quantity == theirs.filled_quantity
            if order.status == OrderStatus.SUBMITTED and target in (
                OrderStatus.ACCEPTED,
                OrderStatus.PARTIALLY_FILLED,
                OrderStatus.FILLED,
                OrderStatus.PENDING_CANCEL,
            ):
                # The ack was lost: the broker has it. Fills come through fill_apply.
                changed |= status_move(order, OrderStatus.ACCEPTED, "ack recovered by status query")
            if target.is_terminal and target is not OrderStatus.FILLED and filled_matches:
                changed |= status_move(
                    order, target, theirs.reason or f"{target.value} at the broker"
                )
        if changed:
            order.save(update_fields=fields)
            realtime.broadcast_order(order)
    return changed


@dataclass
class SettleResult:
    fills_applied: int = 0
    orders_settled: int = 0
    findings: list[Finding] | None = None


def fills_sync(account: Account, venue: Venue, session: BrokerSession) -> SettleResult:
    """Re-request the broker's executions since the watermark and apply each exactly once."""
    result = SettleResult(findings=[])
    now = timezone.now()
    since = (session.fills_watermark or account.created_at) - timedelta(
        seconds=settings.RECONCILE_FILLS_OVERLAP_SECONDS
    )
    fills = venue.fills_since(since)
    client_ids = {f.client_order_id for f in fills if f.client_order_id}
    broker_ids = {f.broker_order_id for f in fills}
    ours: dict[str, str] = {}
    for cid, bid in (
        Order.objects.filter(account=account)
        .filter(client_order_id__in=client_ids)
        .values_list("client_order_id", "broker_order_id")
    ):
        ours[cid] = cid
        if bid:
            ours[bid] = cid
    for cid, bid in Order.objects.filter(
        account=account, broker_order_id__in=broker_ids
    ).values_list("client_order_id", "broker_order_id"):
        ours[bid] = cid
    for fill in sorted(fills, key=lambda f: (f.ts, f.trade_id)):
        cid = ours.get(fill.client_order_id or "") or ours.get(fill.broker_order_id)
        if cid is None:
            result.findings.append(
                unknown_fill(
                    fill.trade_id,
                    fill.instrument,
                    fill.side.value,
                    fill.quantity,
                    fill.broker_order_id,
                )
            )
            continue
        try:
            if fill_apply(fill=fill.to_fill(cid)) is not None:
                result.fills_applied += 1
        except (OrderStateError, ValueError) as exc:
            logger.error("fill %s of %s not applied: %s", fill.trade_id, cid, exc)
            result.findings.append(
                Finding(
                    DiscrepancyKind.ORDER_FILLED_QUANTITY,
                    f"order_filled_quantity:{cid}",
                    fill.instrument,
                    "fill refused",
                    f"execution {fill.trade_id} {fill.side.value} {fill.quantity}",
                    f"execution {fill.trade_id} of order {cid} cannot be applied: {exc}",
                )
            )
    latest = max((f.ts for f in fills), default=None)
    session.fills_watermark = (
        max(filter(None, [session.fills_watermark, latest]))
        if latest
        else (session.fills_watermark or now)
    )
    session.save(update_fields=["fills_watermark", "updated_at"])
    return result


def in_flight_settle(account: Account, venue: Venue, *, older_than: timedelta) -> int:
    """Ask the broker about orders sent with no ack for ``older_than``: settle, never resend."""
    cutoff = timezone.now() - older_than
    settled = 0
    rows = Order.objects.filter(
        account=account, status=OrderStatus.SUBMITTED, submitted_at__lte=cutoff
    ).select_related("instrument")
    for order in rows:
        theirs = venue.order_status(venue_order(order))
        if settle_from_broker(order.pk, theirs, never_received=theirs is None):
            settled += 1
            audit_record(
                actor=ACTOR_RECONCILIATION,
                action="order.settled",
                target=order.client_order_id,
                data={"broker_status": theirs.status.value if theirs else "unknown to the broker"},
            )
    return settled
