"""Connectivity, reconciliation and the order outbox: keeping our books equal to the broker's.

- ``reconcile_account`` is the one reconciliation path (start-up, schedule, command,
  panel button, after a reconnect). It first settles what it can: fills are
  re-requested and applied (exactly once, by trade id), in-flight orders are asked
  about (an order whose ack was lost is ACCEPTED, one the broker never received is
  CANCELED; none is ever resent). What still differs is a ``Discrepancy``: stored
  with both figures, trading PAUSED, an alert raised, an incident opened.
- ``broker_sync`` (every few seconds, on the execution queue: the same single
  process that sends) heartbeats, reconnects with backoff and jitter, alerts after
  2 minutes and PAUSES after the grace period; after a reconnect it reconciles before
  trading resumes.
- (the outbox sweep, ``apps.trading.services.outbox``, re-enqueues orders whose enqueue was lost (Redis down when
  their transaction committed) and refuses stale ones.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Account, Broker
from apps.audit.services import audit_record
from apps.brokers.domain.backoff import backoff_delay
from apps.brokers.domain.reconcile import (
    DiscrepancyKind,
    Finding,
    OurOrder,
    compare_cash,
    compare_orders,
    compare_positions,
    unknown_fill,
)
from apps.brokers.models import (
    BrokerSession,
    Discrepancy,
    DiscrepancyStatus,
    ReconciliationOutcome,
    ReconciliationRun,
    ReconciliationTrigger,
)
from apps.core.exceptions import ApplicationError
from apps.model.orders import OrderStateError, OrderStatus
from apps.model.venues import (
    BrokerOrder,
    ConnectionState,
    Venue,
    VenueError,
)
from apps.notifications.models import Alert
from apps.notifications.services.alerts import alert_raise, alert_resolve
from apps.notifications.services.notifications import notify_on_commit
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident, ModeChange, ModeSource
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading import realtime
from apps.trading.models import Order, Position
from apps.trading.services.common import status_move, venue_for
from apps.trading.services.fills import fill_apply
from apps.trading.venues.mapping import venue_order

logger = logging.getLogger(__name__)

ACTOR_RECONCILIATION = "reconciliation"
ACTOR_WATCHDOG = "broker-watchdog"
ALERT_DISCREPANCY = "reconciliation_discrepancy"
ALERT_DISCONNECTED = "broker_disconnected:{account}"
# Orders sent (or being cancelled) that the broker may still hold.
SENT_OPEN = (
    OrderStatus.SUBMITTED.value,
    OrderStatus.ACCEPTED.value,
    OrderStatus.PARTIALLY_FILLED.value,
    OrderStatus.PENDING_CANCEL.value,
)


class DiscrepancyResolveRefused(ApplicationError):
    pass


def session_for(account: Account) -> BrokerSession:
    session, _ = BrokerSession.objects.get_or_create(account=account)
    return session


def live_accounts() -> list[Account]:
    """Accounts at a real broker (the paper broker's book is our database)."""
    return list(Account.objects.exclude(broker=Broker.PAPER).order_by("id"))


# --- settling: fills and in-flight orders ---------------------------------------------------


def _settle_from_broker(order_id: int, theirs: BrokerOrder | None, *, never_received: bool) -> bool:
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
        if _settle_from_broker(order.pk, theirs, never_received=theirs is None):
            settled += 1
            audit_record(
                actor=ACTOR_RECONCILIATION,
                action="order.settled",
                target=order.client_order_id,
                data={"broker_status": theirs.status.value if theirs else "unknown to the broker"},
            )
    return settled


# --- reconciliation -----------------------------------------------------------------------


@dataclass(frozen=True)
class _OpenRow:
    pk: int
    client_order_id: str
    broker_order_id: str | None
    status: str
    quantity: Decimal
    filled_quantity: Decimal
    symbol: str


def _our_open_orders(account: Account) -> list[_OpenRow]:
    """Our sent, not final orders as light rows (10,000 model instances cost ~0.5 s)."""
    return [
        _OpenRow(*values)
        for values in Order.objects.filter(account=account, status__in=SENT_OPEN).values_list(
            "pk",
            "client_order_id",
            "broker_order_id",
            "status",
            "quantity",
            "filled_quantity",
            "instrument__symbol",
        )
    ]


def _venue_order_of(row: _OpenRow) -> Any:
    return venue_order(Order.objects.select_related("instrument").get(pk=row.pk))


def _discrepancies_record(
    account: Account, run: ReconciliationRun, findings: list[Finding]
) -> tuple[list[Discrepancy], int]:
    """Upsert open discrepancies by key; clear the ones no longer seen. Returns (new, cleared)."""
    now = timezone.now()
    new: list[Discrepancy] = []
    with transaction.atomic():
        open_rows = {
            d.key: d
            for d in Discrepancy.objects.select_for_update().filter(
                account=account, status=DiscrepancyStatus.OPEN
            )
        }
        for f in findings:
            row = open_rows.pop(f.key, None)
            if row is not None:
                row.ours, row.broker, row.detail = f.ours, f.broker, f.detail
                row.last_seen_at, row.last_run = now, run
                row.save(update_fields=["ours", "broker", "detail", "last_seen_at", "last_run"])
                continue
            new.append(
                Discrepancy.objects.create(
                    account=account,
                    kind=f.kind.value,
                    key=f.key,
                    instrument=f.instrument,
                    ours=f.ours,
                    broker=f.broker,
                    detail=f.detail,
                    first_seen_at=now,
                    last_seen_at=now,
                    first_run=run,
                    last_run=run,
                )
            )
        for row in open_rows.values():
            row.status = DiscrepancyStatus.CLEARED
            row.resolved_at = now
            row.resolved_by = ACTOR_RECONCILIATION
            row.resolution_note = f"no longer seen by reconciliation run #{run.pk}"
            row.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_note"])
    return new, len(open_rows)


def _pause_for_discrepancies(
    account: Account, run: ReconciliationRun, new: list[Discrepancy]
) -> None:
    """Any discrepancy pauses trading and alerts; new ones open an incident (runbook 6.5)."""
    mode = system_mode_get()
    change = None
    if mode in (SystemMode.NORMAL, SystemMode.OBSERVATION):
        system_mode_set(
            mode=SystemMode.PAUSE,
            actor=ACTOR_RECONCILIATION,
            source=ModeSource.SYSTEM,
            reason=f"reconciliation run #{run.pk} of {account.name}: "
            f"{run.discrepancies_found} discrepancies",
        )
        change = ModeChange.objects.filter(actor=ACTOR_RECONCILIATION).order_by("-id").first()
    alert_raise(
        severity="error",
        code=ALERT_DISCREPANCY,
        message=f"{run.discrepancies_found} reconciliation discrepancies on {account.name}; "
        "trading paused: see the reconciliation page",
        data={"run": run.pk, "account": account.name},
    )
    if new:
        lines = "\n".join(f"- {d.detail}" for d in new)
        incident = Incident.objects.create(
            mode_change=change,
            title=f"Reconciliation discrepancies on {account.name} (run #{run.pk})",
            what_happened=f"Reconciliation ({run.trigger}) found:\n{lines}",
            opened_by=ACTOR_RECONCILIATION,
        )
        Discrepancy.objects.filter(pk__in=[d.pk for d in new]).update(incident=incident)


# pg_advisory_lock(namespace, account id): one reconciliation of an account at a time,
# whichever process runs it (beat's worker, the command, the panel button).
RECONCILE_LOCK_NAMESPACE = 7301


def reconcile_account(
    *, account: Account, trigger: str, actor: str = ACTOR_RECONCILIATION, purpose: str = "execution"
) -> ReconciliationRun:
    """Compare the broker's positions, open orders, fills and cash with ours; record the result.

    Runs one at a time per account (a PostgreSQL advisory lock), so two triggers at
    the same moment give two consecutive runs, never two half-merged ones.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [RECONCILE_LOCK_NAMESPACE, account.pk])
    try:
        return _reconcile_account(account=account, trigger=trigger, actor=actor, purpose=purpose)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, %s)", [RECONCILE_LOCK_NAMESPACE, account.pk]
            )


def _reconcile_account(
    *, account: Account, trigger: str, actor: str, purpose: str
) -> ReconciliationRun:
    if trigger not in ReconciliationTrigger.values:
        raise ValueError(
            f"unknown trigger {trigger!r}: use one of {', '.join(ReconciliationTrigger.values)}"
        )
    run = ReconciliationRun.objects.create(
        account=account, trigger=trigger, actor=actor, started_at=timezone.now()
    )
    session = session_for(account)
    findings: list[Finding] = []
    try:
        venue = venue_for(account, purpose=purpose)
        venue.connect()
        synced = fills_sync(account, venue, session)
        findings += synced.findings or []
        run.fills_applied = synced.fills_applied
        settled = in_flight_settle(account, venue, older_than=timedelta(0))
        broker_open = venue.open_orders()
        by_client = {o.client_order_id: o for o in broker_open if o.client_order_id}
        by_broker = {o.broker_order_id: o for o in broker_open}
        # Ours that the broker no longer lists as open: ask, settle (cancelled, expired ...).
        for order in _our_open_orders(account):
            theirs = by_client.get(order.client_order_id) or by_broker.get(
                order.broker_order_id or ""
            )
            if theirs is not None:
                if order.status == OrderStatus.SUBMITTED:
                    settled += int(_settle_from_broker(order.pk, theirs, never_received=False))
                continue
            theirs = venue.order_status(_venue_order_of(order))
            if theirs is not None:
                settled += int(_settle_from_broker(order.pk, theirs, never_received=False))
        run.orders_settled = settled
        broker_positions = venue.positions()
        balances = venue.balances()
    except VenueError as exc:
        run.outcome = ReconciliationOutcome.ERROR
        run.error = f"{type(exc).__name__}: {exc}"
        run.finished_at = timezone.now()
        run.save()
        logger.error("reconciliation of %s failed: %s", account.name, run.error)
        return run

    ours_open = _our_open_orders(account)
    findings += compare_orders(
        [
            OurOrder(
                o.client_order_id,
                o.broker_order_id,
                o.symbol,
                OrderStatus(o.status),
                o.quantity,
                o.filled_quantity,
            )
            for o in ours_open
        ],
        broker_open,
        tolerance=settings.RECONCILE_QUANTITY_TOLERANCE,
    )
    our_positions = {
        symbol: qty
        for symbol, qty in Position.objects.filter(account=account)
        .exclude(quantity=0)
        .values_list("instrument__symbol", "quantity")
    }
    findings += compare_positions(
        our_positions,
        {p.instrument: p.quantity for p in broker_positions if p.quantity},
        tolerance=settings.RECONCILE_QUANTITY_TOLERANCE,
    )
    account.refresh_from_db(fields=["cash"])
    cash = next((b.total for b in balances if b.currency == account.currency), None)
    findings += compare_cash(
        account.currency, account.cash, cash, tolerance=settings.RECONCILE_CASH_TOLERANCE
    )
    unique = list({f.key: f for f in findings}.values())
    run.orders_checked = len(ours_open) + len(broker_open)
    run.positions_checked = len(set(our_positions) | {p.instrument for p in broker_positions})
    run.discrepancies_found = len(unique)
    run.outcome = ReconciliationOutcome.DISCREPANCIES if unique else ReconciliationOutcome.CLEAN
    run.finished_at = timezone.now()
    run.save()
    new, cleared = _discrepancies_record(account, run, unique)
    audit_record(
        actor=actor,
        action="reconciliation.run",
        target=account.name,
        data={
            "run": run.pk,
            "trigger": trigger,
            "outcome": run.outcome,
            "discrepancies": [f.key for f in unique],
            "new": len(new),
            "cleared": cleared,
            "fills_applied": run.fills_applied,
            "orders_settled": run.orders_settled,
        },
    )
    differences = ",".join(sorted(f.key for f in unique))
    notify_on_commit(
        severity="error" if unique else "info",
        code="reconciliation.discrepancies" if unique else "reconciliation.clean",
        title=f"Reconciliation of {account.name}: "
        + (f"{len(unique)} discrepancies, trading paused" if unique else "clean"),
        body="\n".join(f.detail for f in unique[:20])
        or f"{run.orders_checked} orders, {run.positions_checked} positions checked",
        # The same set of differences is one notification; a clean state one per window.
        dedup_key=f"reconciliation:{account.pk}:"
        + (hashlib.sha1(differences.encode()).hexdigest() if unique else "clean"),  # noqa: S324
        data={"run": run.pk, "account": account.name},
    )
    if unique:
        logger.error(
            "reconciliation of %s: %d discrepancies (%s); trading paused",
            account.name,
            len(unique),
            ", ".join(f.key for f in unique[:10]),
        )
        _pause_for_discrepancies(account, run, new)
    else:
        logger.info(
            "reconciliation of %s clean: %d orders, %d positions, %d fills applied, %d settled",
            account.name,
            run.orders_checked,
            run.positions_checked,
            run.fills_applied,
            run.orders_settled,
        )
    return run


def reconcile_all(
    *, trigger: str, actor: str = ACTOR_RECONCILIATION, purpose: str = "execution"
) -> list[ReconciliationRun]:
    return [
        reconcile_account(account=a, trigger=trigger, actor=actor, purpose=purpose)
        for a in Account.objects.order_by("id")
    ]


def startup_reconcile(*, account: Account) -> ReconciliationRun:
    """At start-up the system does not trade until reconciliation passes.

    NORMAL is moved to OBSERVATION first; a clean run returns it to NORMAL (only if
    nobody changed the mode meanwhile). A run with discrepancies leaves it PAUSED; a
    broker that cannot be reached leaves it in OBSERVATION.
    """
    entered = None
    if system_mode_get() is SystemMode.NORMAL:
        system_mode_set(
            mode=SystemMode.OBSERVATION,
            actor=ACTOR_RECONCILIATION,
            source=ModeSource.SYSTEM,
            reason="start-up: no trading until reconciliation passes",
        )
        entered = ModeChange.objects.order_by("-id").first()
    run = reconcile_account(account=account, trigger=ReconciliationTrigger.STARTUP)
    latest = ModeChange.objects.order_by("-id").first()
    if (
        entered is not None
        and latest is not None
        and latest.pk == entered.pk
        and run.outcome == ReconciliationOutcome.CLEAN
    ):
        system_mode_set(
            mode=SystemMode.NORMAL,
            actor=ACTOR_RECONCILIATION,
            source=ModeSource.SYSTEM,
            reason=f"start-up reconciliation #{run.pk} clean",
        )
    elif run.outcome == ReconciliationOutcome.ERROR:
        logger.error("start-up reconciliation failed (%s): staying in observation", run.error)
    return run


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
    actor = f"user:{user.username}"
    with transaction.atomic():
        row = (
            Discrepancy.objects.select_for_update().select_related("account").get(pk=discrepancy_id)
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
        from apps.marketdata.models import Instrument

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


# --- connectivity -------------------------------------------------------------------------


def _disconnected(account: Account, session: BrokerSession, error: str, now: datetime) -> None:
    first = session.disconnected_since is None or session.state == ConnectionState.CONNECTED
    if first:
        session.disconnected_since = now
        logger.error("broker %s of %s disconnected: %s", account.broker, account.name, error)
    session.state = ConnectionState.DISCONNECTED
    session.connected_since = None
    session.last_error = error[:2000]
    delay = backoff_delay(
        session.reconnect_attempts,
        base=settings.BROKER_BACKOFF_BASE_SECONDS,
        cap=settings.BROKER_BACKOFF_MAX_SECONDS,
    )
    session.reconnect_attempts += 1
    session.next_attempt_at = now + timedelta(seconds=delay)
    down_for = (now - session.disconnected_since).total_seconds()
    if down_for >= settings.BROKER_DISCONNECT_ALERT_SECONDS and not session.alerted:
        notify_on_commit(
            severity="critical",
            code="broker.disconnected",
            title=f"Broker {account.broker} of {account.name} disconnected",
            body=f"down for {int(down_for)} s: {error}; trading pauses after "
            f"{settings.BROKER_DISCONNECT_PAUSE_SECONDS} s",
            dedup_key=f"broker-disconnected:{account.pk}:{session.disconnected_since:%Y%m%d%H%M%S}",
            data={"account": account.name, "broker": account.broker},
        )
        alert_raise(
            severity="critical",
            code=ALERT_DISCONNECTED.format(account=account.name),
            message=f"broker {account.broker} of {account.name} disconnected for "
            f"{int(down_for)} s: {error}",
            data={"account": account.name, "broker": account.broker},
        )
        session.alerted = True
    if (
        down_for >= settings.BROKER_DISCONNECT_PAUSE_SECONDS
        and not session.paused_trading
        and system_mode_get() in (SystemMode.NORMAL, SystemMode.OBSERVATION)
    ):
        system_mode_set(
            mode=SystemMode.PAUSE,
            actor=ACTOR_WATCHDOG,
            source=ModeSource.SYSTEM,
            reason=f"broker {account.broker} of {account.name} disconnected for {int(down_for)} s",
        )
        session.paused_trading = True
    session.save()


def _reconnected(account: Account, session: BrokerSession, now: datetime) -> None:
    """After a reconnect: executions re-requested and reconciled before trading resumes."""
    logger.info("broker %s of %s reconnected; reconciling", account.broker, account.name)
    down_since = session.disconnected_since
    session.state = ConnectionState.CONNECTED
    session.connected_since = now
    session.disconnected_since = None
    session.reconnect_attempts = 0
    session.next_attempt_at = None
    session.last_heartbeat_at = now
    session.save()
    run = reconcile_account(account=account, trigger=ReconciliationTrigger.RECONNECT)
    if run.outcome == ReconciliationOutcome.ERROR:
        # Connected, but the books cannot be re-read: not usable yet, keep backing off.
        session.state = ConnectionState.DISCONNECTED
        session.disconnected_since = down_since or now
        _disconnected(account, session, f"reconciliation after reconnect failed: {run.error}", now)
        return
    for alert in Alert.objects.filter(
        code=ALERT_DISCONNECTED.format(account=account.name), resolved_at__isnull=True
    ):
        alert_resolve(alert_id=alert.pk, actor=ACTOR_WATCHDOG)
    session.alerted = False
    if session.paused_trading and run.outcome == ReconciliationOutcome.CLEAN:
        last = ModeChange.objects.order_by("-id").first()
        if (
            system_mode_get() is SystemMode.PAUSE
            and last is not None
            and last.actor == ACTOR_WATCHDOG
        ):
            system_mode_set(
                mode=SystemMode.NORMAL,
                actor=ACTOR_WATCHDOG,
                source=ModeSource.SYSTEM,
                reason=f"broker back and reconciliation #{run.pk} clean",
            )
        session.paused_trading = False
    session.save()


def broker_sync(*, account: Account, now: datetime | None = None) -> BrokerSession:
    """One heartbeat of ``account``'s broker session (run every few seconds by beat)."""
    now = now or timezone.now()
    session = session_for(account)
    if (
        session.state != ConnectionState.CONNECTED
        and session.next_attempt_at is not None
        and now < session.next_attempt_at
    ):
        # Still backing off; the clock of the disconnection keeps running for the alert.
        if session.disconnected_since is not None:
            _escalate_only(account, session, now)
        return session
    try:
        venue = venue_for(account)
        if venue.connection_state() != ConnectionState.CONNECTED:
            venue.connect()
        venue.heartbeat()
    except VenueError as exc:
        _disconnected(account, session, f"{type(exc).__name__}: {exc}", now)
        return session
    if session.disconnected_since is not None or session.state != ConnectionState.CONNECTED:
        _reconnected(account, session, now)
        return session
    session.last_heartbeat_at = now
    session.save(update_fields=["last_heartbeat_at", "updated_at"])
    try:
        fills_sync(account, venue, session)
        in_flight_settle(
            account, venue, older_than=timedelta(seconds=settings.ORDER_IN_FLIGHT_QUERY_SECONDS)
        )
    except VenueError as exc:
        _disconnected(account, session, f"{type(exc).__name__}: {exc}", now)
    return session


def _escalate_only(account: Account, session: BrokerSession, now: datetime) -> None:
    """During backoff: only the alert and PAUSE clocks move (no connection attempt)."""
    attempts, next_at = session.reconnect_attempts, session.next_attempt_at
    _disconnected(account, session, session.last_error, now)
    session.reconnect_attempts, session.next_attempt_at = attempts, next_at
    session.save(update_fields=["reconnect_attempts", "next_attempt_at"])


# --- the outbox ---------------------------------------------------------------------------
