"""Resolving a discrepancy (an OTP-verified staff user): adopt the broker's state or mark it investigated."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.brokers.domain.reconcile import (
    DiscrepancyKind,
)
from apps.brokers.models import (
    Discrepancy,
    DiscrepancyStatus,
)
from apps.brokers.services.common import (
    ALERT_DISCREPANCY,
    DiscrepancyNotFound,
    DiscrepancyResolveRefused,
)
from apps.core.text import text_problem
from apps.marketdata.models import Instrument
from apps.model.orders import OrderStatus
from apps.notifications.models import Alert
from apps.notifications.services.alerts import alert_resolve
from apps.trading import realtime
from apps.trading.models import Order, Position
from apps.trading.services.common import status_move

logger = logging.getLogger(__name__)


# --- resolution (a 2FA admin) -------------------------------------------------------------


def _decimal(value: str, what: str) -> Decimal:
    try:
        return Decimal(value)
    except (InvalidOperation, ValueError):
        raise DiscrepancyResolveRefused(
            f"cannot adopt: the broker's {what} {value!r} is not a number"
        ) from None


ADOPTABLE = frozenset(
    {DiscrepancyKind.POSITION, DiscrepancyKind.MISSING_ORDER, DiscrepancyKind.CASH}
)


def discrepancy_resolve(
    *, discrepancy_id: int, action: str, note: str, user: Any, otp_verified: bool
) -> Discrepancy:
    """Resolve one open discrepancy: ``adopt`` the broker's state or mark it ``investigated``.

    Only an active staff user whose session passed two-factor verification may; the
    resolution is audited with the user, the note and both figures. It does not resume
    trading: that stays a separate, deliberate act.

    Raises
    ------
    DiscrepancyNotFound
        No discrepancy with that id (http_status 404).
    DiscrepancyResolveRefused
        Not allowed, already resolved, or not adoptable (nothing changed).
    """
    if user is None or not (user.is_active and user.is_staff):
        raise DiscrepancyResolveRefused("only a staff user can resolve a discrepancy")
    if not otp_verified:
        raise DiscrepancyResolveRefused(
            "resolving a discrepancy needs a two-factor (OTP) verified session"
        )
    if action not in ("adopt", "investigated"):
        raise DiscrepancyResolveRefused(f"unknown action {action!r}: use adopt or investigated")
    note = (note or "").strip()
    if not note:
        raise DiscrepancyResolveRefused("a note is required: say what you found")
    problem = text_problem(note)
    if problem:  # PostgreSQL cannot store it
        raise DiscrepancyResolveRefused(f"the note {problem}: remove it")
    actor = f"user:{user.username}"
    with transaction.atomic():
        row = (
            Discrepancy.objects.select_for_update()
            .select_related("account")
            .filter(pk=discrepancy_id)
            .first()
        )
        if row is None:
            raise DiscrepancyNotFound(
                f"discrepancy #{discrepancy_id} does not exist: pick one from the "
                "reconciliation page"
            )
        if row.status != DiscrepancyStatus.OPEN:
            raise DiscrepancyResolveRefused(f"discrepancy #{row.pk} is already {row.status}")
        kind = DiscrepancyKind(row.kind)
        if action == "adopt":
            if kind not in ADOPTABLE:
                raise DiscrepancyResolveRefused(
                    f"a {kind.value} discrepancy cannot be adopted automatically: act at the "
                    "broker (or in the books) and mark it investigated"
                )
            _adopt(row, kind, actor)
        row.status = (
            DiscrepancyStatus.ADOPTED if action == "adopt" else DiscrepancyStatus.INVESTIGATED
        )
        row.resolved_at = timezone.now()
        row.resolved_by = actor
        row.resolution_note = note
        row.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_note"])
        audit_record(
            actor=actor,
            action=f"discrepancy.{action}",
            target=row.key,
            data={
                "id": row.pk,
                "account": row.account.name,
                "ours": row.ours,
                "broker": row.broker,
                "note": note,
                "otp_verified": True,
            },
        )
        if not Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN).exists():
            for alert in Alert.objects.filter(code=ALERT_DISCREPANCY, resolved_at__isnull=True):
                alert_resolve(alert_id=alert.pk, actor=actor)
    return row


def _adopt(row: Discrepancy, kind: DiscrepancyKind, actor: str) -> None:
    account = row.account
    if kind is DiscrepancyKind.POSITION:
        quantity = _decimal(row.broker, "quantity")
        instrument = Instrument.objects.get(symbol=row.instrument)
        position, _ = Position.objects.select_for_update().get_or_create(
            account=account, instrument=instrument
        )
        position.quantity = quantity
        if not quantity:
            position.avg_price = Decimal(0)
        elif not position.avg_price:
            position.avg_price = position.last_price or Decimal(0)
        position.save()
        realtime.broadcast_positions(account)
    elif kind is DiscrepancyKind.CASH:
        locked = Account.objects.select_for_update().get(pk=account.pk)
        locked.cash = _decimal(row.broker, "cash")
        locked.save(update_fields=["cash"])
    elif kind is DiscrepancyKind.MISSING_ORDER:
        client_order_id = row.key.split(":", 1)[1]
        order = Order.objects.select_for_update().get(client_order_id=client_order_id)
        if not status_move(order, OrderStatus.CANCELED, f"adopted the broker's state ({actor})"):
            raise DiscrepancyResolveRefused(
                f"order {client_order_id} is {order.status}: it cannot be marked cancelled"
            )
        order.save(update_fields=["status", "status_reason", "updated_at"])
        realtime.broadcast_order(order)
