"""The kill switch: risk latches KILL and records the report; this module acts on it,
cancelling every open order and closing every position here and now (no Celery)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.core.db import rows_update
from apps.core.text import text_clean
from apps.model.orders import OPEN_STATUSES, OrderStatus
from apps.model.values import OrderType, Side
from apps.model.venues import (
    VenueError,
)
from apps.risk.services.common import REASON_MAX
from apps.risk.services.kill import kill_latch, kill_report_record
from apps.trading import realtime
from apps.trading.models import Order, Position
from apps.trading.services.common import (
    BULK_BROADCAST_LIMIT,
    KILL_ORDER_PREFIX,
    set_status,
    venue_for,
)
from apps.trading.services.fills import fill_apply, fills_apply
from apps.trading.services.orders import orders_send
from apps.trading.venues.mapping import venue_order

logger = logging.getLogger(__name__)


# --- cancels and closes, in this process ---------------------------------------------------


@dataclass(frozen=True)
class CancelResult:
    cancels_sent: int
    denied: int
    errors: tuple[str, ...]


def orders_cancel_all(*, account: Account, actor: str, reason: str) -> CancelResult:
    """Cancel every open order of ``account`` at its broker, in this process.

    An order never sent (INITIALIZED) is DENIED, not cancelled: it never left. A sent
    one is cancelled through the venue; the paper broker's cancel is final at once
    (CANCELED), a real broker's is PENDING_CANCEL until it confirms. The kill switch's
    own closing orders are left alone. One audit row lists what was done.
    """
    venue = venue_for(account, purpose="control")
    immediate = venue.cancel_is_immediate
    sent = denied = 0
    errors: list[str] = []
    now = timezone.now()
    with transaction.atomic():
        orders = list(
            Order.objects.select_for_update(of=("self",))
            .select_related("instrument")
            .filter(account=account, status__in=OPEN_STATUSES)
            .exclude(client_order_id__startswith=KILL_ORDER_PREFIX)
            .order_by("id")
        )
        # A real broker gets its own mass cancel (Kraken CancelAll, IB reqGlobalCancel):
        # one request that also catches orders we do not know about. If it fails, each
        # order is cancelled one by one below.
        mass_cancelled = False
        if not immediate and any(o.status != OrderStatus.INITIALIZED for o in orders):
            try:
                venue.cancel_all()
                mass_cancelled = True
            except VenueError as exc:
                errors.append(f"mass cancel: {exc}")
        changed: list[Order] = []
        for order in orders:
            status = OrderStatus(order.status)
            if status is OrderStatus.INITIALIZED:
                set_status(order, OrderStatus.DENIED, f"{reason} (never sent)")
                denied += 1
            else:
                if not mass_cancelled:
                    try:
                        venue.cancel(venue_order(order))
                    except VenueError as exc:
                        errors.append(f"cancel {order.client_order_id}: {exc}")
                        continue
                sent += 1
                if immediate or status is OrderStatus.SUBMITTED:
                    set_status(order, OrderStatus.CANCELED, reason)
                elif status is not OrderStatus.PENDING_CANCEL:
                    set_status(order, OrderStatus.PENDING_CANCEL, reason)
            order.updated_at = now
            changed.append(order)
        if changed:
            rows_update(Order, changed, ["status", "status_reason", "updated_at"])
            audit_record(
                actor=actor,
                action="orders.cancel_all",
                target=account.name,
                data={
                    "reason": reason,
                    "cancels_sent": sent,
                    "denied": denied,
                    "orders": [o.client_order_id for o in changed],
                    "errors": errors,
                },
            )
            for order in changed[:BULK_BROADCAST_LIMIT]:
                realtime.broadcast_order(order)
    return CancelResult(sent, denied, tuple(errors))


def _closing_order(position: Position, *, actor: str, reason: str) -> Order:
    """The kill switch's reduce-only market order that flattens ``position`` (unsaved),
    priced for the gate at the position's last mark."""
    return Order(
        account_id=position.account_id,
        instrument=position.instrument,
        client_order_id=f"{KILL_ORDER_PREFIX}{uuid.uuid4().hex}",
        side=(Side.SELL if position.quantity > 0 else Side.BUY).value,
        order_type=OrderType.MARKET.value,
        quantity=abs(position.quantity),
        decision_price=position.last_price or position.avg_price,
        reduce_only=True,
        status=OrderStatus.INITIALIZED.value,
        status_reason=f"kill switch ({actor}): {reason}"[:500],
    )


def position_close_now(*, position: Position, actor: str, reason: str) -> Order | None:
    """Close ``position`` with a reduce-only market order sent here, through ``orders_send``.

    The order goes through the same last-moment gate as every order (in KILL only
    the kill switch's own closing orders pass). At the paper broker it fills at once
    at the last mark (``PaperVenue.fill_at_mark``); a real broker's fills arrive later.
    Returns the closing order (None when the position is already flat).
    """
    quantity = position.quantity
    if not quantity:
        return None
    mark = position.last_price or position.avg_price
    order = _closing_order(position, actor=actor, reason=reason)
    order.save()
    order = orders_send(order_ids=[order.pk], purpose="control").orders[0]
    if order.status not in (OrderStatus.ACCEPTED.value, OrderStatus.SUBMITTED.value):
        return order
    venue = venue_for(position.account, purpose="control")
    fill = venue.fill_at_mark(venue_order(order), mark=mark, ts=timezone.now())
    if fill is not None:  # the paper broker fills at once; a real broker's fill comes later
        fill_apply(fill=fill)
        order.refresh_from_db(fields=["status", "filled_quantity", "avg_fill_price", "fees"])
    return order


def positions_close_all(
    *, account: Account, actor: str, reason: str
) -> tuple[list[Order], list[str]]:
    """Close every position of ``account`` at once: the kill switch's closing orders.

    One reduce-only market order per position, sent in one batch through the one send
    protocol (``orders_send``, on the account's control session): in KILL only the kill
    switch's own closing orders pass its gate. At the paper broker the orders then fill
    at once at the last mark (``PaperVenue.fill_at_mark``), applied by ``fills_apply``.
    Returns (the closing orders, errors).
    """
    venue = venue_for(account, purpose="control")
    positions = list(
        Position.objects.filter(account=account).exclude(quantity=0).select_related("instrument")
    )
    if not positions:
        return [], []
    marks = {p.instrument_id: p.last_price or p.avg_price for p in positions}
    created = Order.objects.bulk_create(
        [_closing_order(p, actor=actor, reason=reason) for p in positions]
    )
    outcome = orders_send(order_ids=[o.pk for o in created], purpose="control")
    orders = outcome.orders
    acked = [o for o in orders if o.status == OrderStatus.ACCEPTED]
    ts = timezone.now()
    fills = [venue.fill_at_mark(venue_order(o), mark=marks[o.instrument_id], ts=ts) for o in acked]
    fills_apply(fills=[f for f in fills if f is not None])  # the paper broker's, at once
    return orders, outcome.errors


# --- the kill switch ------------------------------------------------------------------------


@dataclass(frozen=True)
class KillReport:
    """What the kill switch did. ``flat``: no position left open at any account."""

    mode_persisted_at: datetime
    cancels_sent: int
    closing_orders: tuple[str, ...]
    flat: bool
    incident_id: int | None = None
    orders_denied: int = 0
    cancels_done_at: datetime | None = None
    flat_at: datetime | None = None
    errors: tuple[str, ...] = field(default=())
    reason: str = ""  # as stored: see reason_cleaned
    reason_cleaned: tuple[str, ...] = field(default=())  # what cleaning the reason did


def kill_switch_engage(*, actor: str, source: str, reason: str) -> KillReport:
    """Latch KILL, then cancel every open order and close every position, here and now.

    1. Risk latches KILL (``apps.risk.services.kill.kill_latch``), committed before anything
       else: from that commit on, ``orders_send`` denies every order but the kill
       switch's own closing orders, whatever Celery does. (Call it outside a
       transaction, as every caller does, so the latch is committed first.) Engaging
       again while in KILL sweeps again, under the same incident.
    2. Every open order at every account is cancelled through its venue (an order
       never sent, INITIALIZED, is DENIED instead).
    3. Every position is closed by a reduce-only market order sent through
       ``orders_send`` in this process; the paper broker fills it at once at the last
       mark (see ``PaperVenue.fill_at_mark``), real brokers report their fills later.

    No Celery worker is involved, so it works with the workers down or the queue
    backlogged. Returns the KillReport (also stored on the incident).

    Whatever the reason's text, it engages: a NUL character or a lone surrogate (which
    PostgreSQL cannot store) is replaced by U+FFFD and an over-long reason is cut
    (``apps.core.text.text_clean``); ``reason_cleaned`` in the report, the audit rows and
    the reply says what was done.

    Raises
    ------
    ModeChangeRefused
        Unknown source or empty reason (audited, nothing changed).
    """
    cleaned = text_clean(reason.strip(), max_length=REASON_MAX) if isinstance(reason, str) else None
    reason_cleaned = cleaned.changes if cleaned is not None else ()
    if cleaned is not None:
        reason = cleaned.text
        if reason_cleaned:
            logger.warning("kill switch: the reason was cleaned: %s", "; ".join(reason_cleaned))
    incident, mode_persisted_at = kill_latch(
        actor=actor, source=source, reason=reason, reason_cleaned=reason_cleaned
    )
    reason = reason.strip()

    cancels = denied = 0
    errors: list[str] = []
    accounts = list(Account.objects.order_by("id"))
    for account in accounts:
        result = orders_cancel_all(account=account, actor=actor, reason=f"kill switch: {reason}")
        cancels += result.cancels_sent
        denied += result.denied
        errors.extend(result.errors)
    cancels_done_at = timezone.now()

    closing: list[str] = []
    for account in accounts:
        try:
            orders, close_errors = positions_close_all(account=account, actor=actor, reason=reason)
        except Exception as exc:  # noqa: BLE001 - one broker failing must not stop the others
            logger.exception("kill switch: closing the positions of %s failed", account)
            errors.append(f"close {account.name}: {exc}")
            continue
        closing.extend(o.client_order_id for o in orders)
        errors.extend(close_errors)
    flat = not Position.objects.exclude(quantity=0).exists()
    flat_at = timezone.now() if flat else None

    report = KillReport(
        mode_persisted_at=mode_persisted_at,
        cancels_sent=cancels,
        closing_orders=tuple(closing),
        flat=flat,
        incident_id=incident.pk,
        orders_denied=denied,
        cancels_done_at=cancels_done_at,
        flat_at=flat_at,
        errors=tuple(errors),
        reason=reason,
        reason_cleaned=reason_cleaned,
    )
    summary = {
        "mode_persisted_at": mode_persisted_at.isoformat(),
        "cancels_sent": cancels,
        "orders_denied": denied,
        "closing_orders": closing,
        "flat": flat,
        "errors": errors,
        "reason_cleaned": list(reason_cleaned),
    }
    kill_report_record(
        incident=incident, actor=actor, source=source, reason=reason, summary=summary
    )
    return report
