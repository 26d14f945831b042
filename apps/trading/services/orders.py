"""The one send protocol (the engine's orders one at a time, the kill switch's closing
orders in a batch): the last-moment gate, one broker call per order, never twice."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.core import influx
from apps.core.db import rows_update
from apps.marketdata.models import Instrument
from apps.model.orders import OrderStatus
from apps.model.venues import VenueAck, VenueRejected, VenueTemporaryError
from apps.notifications.services.notifications import notify_on_commit
from apps.risk.domain.checks import CheckResult, RiskContext, check_mode
from apps.risk.domain.modes import SystemMode
from apps.risk.models import SystemState
from apps.risk.services.modes import system_mode_lock_shared
from apps.trading import realtime
from apps.trading.models import Order, Position
from apps.trading.selectors import columns_sql, instance_from_row
from apps.trading.services.common import (
    BULK_BROADCAST_LIMIT,
    KILL_ORDER_PREFIX,
    order_intent,
    set_status,
    venue_for,
)
from apps.trading.venues.mapping import venue_order

logger = logging.getLogger(__name__)


def _gate(order: Order, mode: SystemMode, position_quantity: Decimal) -> CheckResult:
    """The mode gate for ``order`` in ``mode`` with the account's ``position_quantity``."""
    return check_mode(
        order_intent(order),
        RiskContext(
            mode=mode,
            last_price=order.decision_price or Decimal(1),
            position_quantity=position_quantity,
            kill_switch_order=order.client_order_id.startswith(KILL_ORDER_PREFIX),
        ),
    )


def _sql_table(model: Any) -> str:
    return f'"{model._meta.db_table}"'


_SEND_SQL: dict[str, str] = {}


def _send_sql(name: str) -> str:
    """The two statements of the send path, built once from the models' metadata.

    Both take the share lock of the mode row in a sub-SELECT, which runs before the
    order rows are locked: the documented lock order (SystemState -> Order), and one
    round trip instead of three.
    """
    if not _SEND_SQL:
        order, account, instrument = _sql_table(Order), _sql_table(Account), _sql_table(Instrument)
        state, position = _sql_table(SystemState), _sql_table(Position)
        mode = f'(SELECT s."mode" FROM {state} s WHERE s."id" = 1 FOR SHARE)'  # noqa: S608
        # Names from the models, values as parameters.
        _SEND_SQL["orders"] = f"""
            SELECT {columns_sql(Order, "o")}, {columns_sql(Account, "a")},
                {columns_sql(Instrument, "i")}, {mode},
                (SELECT p."quantity" FROM {position} p
                  WHERE p."account_id" = o."account_id" AND p."instrument_id" = o."instrument_id")
            FROM {order} o
            JOIN {account} a ON a."id" = o."account_id"
            JOIN {instrument} i ON i."id" = o."instrument_id"
            WHERE o."id" = ANY(%s)
            ORDER BY o."id"
            FOR UPDATE OF o
        """  # noqa: S608
        _SEND_SQL["gate"] = f"""
            SELECT {mode}, p."instrument_id", p."quantity"
            FROM (SELECT 1) AS one
            LEFT JOIN {position} p ON p."account_id" = %s AND p."instrument_id" = ANY(%s)
        """  # noqa: S608
    return _SEND_SQL[name]


def _orders_lock_for_send(order_ids: Sequence[int]) -> list[tuple[Order, SystemMode, Decimal]]:
    """The orders (with account and instrument) under their row locks, in id order, the mode
    under a share lock of the mode row, and each order's position quantity: one statement
    (in a transaction). Raises ``Order.DoesNotExist`` naming an unknown id."""
    with connection.cursor() as cursor:
        cursor.execute(_send_sql("orders"), [list(order_ids)])
        rows = cursor.fetchall()
    found = []
    mode: SystemMode | None = None
    for row in rows:
        order, at = instance_from_row(Order, row, 0)
        order.account, at = instance_from_row(Account, row, at)
        order.instrument, at = instance_from_row(Instrument, row, at)
        if mode is None:  # the same row for every order
            # No SystemState row yet: created (NORMAL) and locked as everywhere else.
            mode = SystemMode(row[at]) if row[at] is not None else system_mode_lock_shared()
        quantity = row[at + 1]
        found.append((order, mode, quantity if quantity is not None else Decimal(0)))
    missing = sorted(set(order_ids) - {order.pk for order, _, _ in found})
    if missing:
        raise Order.DoesNotExist(f"Order matching query does not exist: id {missing[0]}")
    return found


def _send_gate_inputs(account_id: int, instrument_ids: list[int]) -> tuple[SystemMode, dict]:
    """The mode under a share lock of the mode row, and the account's positions in
    ``instrument_ids`` (in a transaction): one statement."""
    with connection.cursor() as cursor:
        cursor.execute(_send_sql("gate"), [account_id, instrument_ids])
        rows = cursor.fetchall()
    mode = SystemMode(rows[0][0]) if rows[0][0] is not None else system_mode_lock_shared()
    return mode, {inst: qty for _, inst, qty in rows if inst is not None}


def _order_refuse(
    order: Order, status: OrderStatus, action: str, mode: SystemMode, gate: CheckResult, when: str
) -> str:
    """The mode gate said no: record why on the order and in the audit trail, push it.
    Returns the reason."""
    reason = f"mode {mode.value} {when}: {gate.detail}"
    set_status(order, status, reason)
    order.save(update_fields=["status", "status_reason", "updated_at"])
    audit_record(
        actor="execution",
        action=action,
        target=order.client_order_id,
        data={"mode": mode.value, "detail": gate.detail},
    )
    realtime.broadcast_order(order)
    return reason


@dataclass
class SendOutcome:
    """What ``orders_send`` did: every order asked for (id order, as it ended), one line
    per order refused, rejected or left in flight, and the in-flight ones' errors."""

    orders: list[Order]
    errors: list[str] = field(default_factory=list)
    in_flight: dict[int, VenueTemporaryError] = field(default_factory=dict)


def orders_send(*, order_ids: Sequence[int], purpose: str = "execution") -> SendOutcome:
    """Send orders of ONE account to its broker, each at most once, never after a PAUSE or
    KILL that forbids it: the one send protocol.

    1. Under the orders' row locks and a share lock of the mode row (one statement):
       only an INITIALIZED order goes on (a retried or redelivered task finds it
       SUBMITTED or later and sends nothing); the mode gate is checked (in KILL, every
       order but the kill switch's own reduce-only closing orders is DENIED). The orders
       are marked SUBMITTED and committed BEFORE the broker is called: after a crash
       they are "in flight", settled by a status query or reconciliation, never resent
       blindly.
    2. The broker calls run inside a transaction that holds a share lock of the mode row
       and checks the gate again. A mode change takes that row FOR UPDATE, so it waits
       for sends in progress, and no send starts after it: an order the new mode forbids
       is CANCELED without reaching the broker ("order.withheld").
    3. The acks and rejections are recorded (under the orders' row locks: a fill may
       have arrived before the ack), audited as "order.sent" for one order, or as one
       "orders.sent" row listing a batch (the kill switch's closes: one INSERT, not 200).

    ``purpose`` picks the account's adapter: "execution" (the execution worker's) or
    "control" (the kill switch's own session). A broker error that leaves the outcome
    unknown (``VenueTemporaryError``) leaves the order SUBMITTED and is returned in
    ``in_flight``; it is never retried here.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = _orders_lock_for_send(order_ids)
        accounts = {order.account_id for order, _, _ in locked}
        if len(accounts) > 1:
            raise ValueError(f"orders_send takes the orders of one account, got {sorted(accounts)}")
        outcome = SendOutcome(orders=[order for order, _, _ in locked])
        sendable: list[Order] = []
        for order, mode, position_quantity in locked:
            if order.status != OrderStatus.INITIALIZED:
                logger.info(
                    "order %s already %s: not sent again", order.client_order_id, order.status
                )
                continue
            gate = _gate(order, mode, position_quantity)
            if not gate.passed:
                reason = _order_refuse(
                    order, OrderStatus.DENIED, "order.denied_at_send", mode, gate, "at send time"
                )
                outcome.errors.append(f"{order.client_order_id} denied: {reason}")
                continue
            set_status(order, OrderStatus.SUBMITTED)
            order.submitted_at = order.updated_at = now
            sendable.append(order)
        rows_update(Order, sendable, ["status", "submitted_at", "updated_at"])
    if not sendable:
        return outcome

    account = sendable[0].account
    venue = venue_for(account, purpose=purpose)
    acks: dict[int, VenueAck] = {}
    rejected: dict[int, VenueRejected] = {}
    withheld: dict[int, tuple[SystemMode, CheckResult]] = {}
    with transaction.atomic():
        mode, quantities = _send_gate_inputs(
            account.pk, sorted({o.instrument_id for o in sendable})
        )
        for order in sendable:
            gate = _gate(order, mode, quantities.get(order.instrument_id, Decimal(0)))
            if not gate.passed:
                withheld[order.pk] = (mode, gate)
                continue
            try:
                acks[order.pk] = venue.submit(venue_order(order))
            except VenueRejected as exc:
                rejected[order.pk] = exc
            except VenueTemporaryError as exc:
                logger.warning(
                    "order %s: outcome unknown after send; left SUBMITTED for reconciliation",
                    order.client_order_id,
                )
                outcome.in_flight[order.pk] = exc
                outcome.errors.append(
                    f"{order.client_order_id} outcome unknown (left SUBMITTED): {exc}"
                )

    if not (acks or rejected or withheld):  # every send's outcome unknown: nothing to record
        return outcome
    with transaction.atomic():
        current = {
            o.pk: o
            for o in Order.objects.select_for_update(of=("self",))
            .select_related("instrument")
            .filter(pk__in=[o.pk for o in sendable])
            .order_by("id")
        }
        now = timezone.now()
        accepted: list[Order] = []
        for pk, order in current.items():
            order.account = account
            if pk in withheld:
                if order.status == OrderStatus.SUBMITTED:
                    mode, gate = withheld[pk]
                    reason = _order_refuse(
                        order, OrderStatus.CANCELED, "order.withheld", mode, gate, "before send"
                    )
                    outcome.errors.append(f"{order.client_order_id} withheld: {reason}")
            elif pk in rejected:
                exc = rejected[pk]
                outcome.errors.append(f"{order.client_order_id} rejected: {exc}")
                if order.status == OrderStatus.SUBMITTED:
                    set_status(order, OrderStatus.REJECTED, str(exc))
                    order.save(update_fields=["status", "status_reason", "updated_at"])
                    notify_on_commit(
                        severity="warning",
                        code="order.rejected",
                        title=f"Order {order.client_order_id} rejected by {venue.name}",
                        body=f"{order.side} {order.quantity} {order.instrument.symbol}: {exc}",
                        dedup_key=f"order-rejected:{order.client_order_id}",
                        data={"order": order.client_order_id, "code": exc.code},
                    )
                realtime.broadcast_order(order)
            elif pk in acks:
                order.broker_order_id = acks[pk].broker_order_id
                if order.status == OrderStatus.SUBMITTED:
                    set_status(order, OrderStatus.ACCEPTED)
                order.updated_at = now
                accepted.append(order)
        if len(order_ids) == 1:
            for order in accepted:
                audit_record(
                    actor="execution",
                    action="order.sent",
                    target=order.client_order_id,
                    data={"venue": venue.name, "broker_order_id": order.broker_order_id},
                )
        elif accepted or outcome.errors:  # a batch (the kill switch's closes): one row for all
            audit_record(
                actor="execution",
                action="orders.sent",
                target=account.name,
                data={
                    "venue": venue.name,
                    "orders": {o.client_order_id: o.broker_order_id for o in accepted},
                    "errors": outcome.errors,
                },
            )
        rows_update(Order, accepted, ["status", "broker_order_id", "updated_at"])
        for order in accepted[:BULK_BROADCAST_LIMIT]:
            realtime.broadcast_order(order)
    if settings.INFLUXDB_URL:  # decided -> acknowledged by the broker: the order path's latency
        for order in accepted:
            influx.write_latency(
                kind="order",
                seconds=(now - order.created_at).total_seconds(),
                ts=now,
                account=account.name,
                instrument=order.instrument.symbol,
            )
    outcome.orders = [current.get(o.pk, o) for o in outcome.orders]
    return outcome


def order_send(*, order_id: int) -> Order:
    """Send one order (the engine's, through the execution queue): ``orders_send`` of one.

    Raises the broker's ``VenueTemporaryError`` when the outcome is unknown (the order
    stays SUBMITTED, settled by a status query or reconciliation, never resent).
    """
    outcome = orders_send(order_ids=[order_id])
    if order_id in outcome.in_flight:
        raise outcome.in_flight[order_id]
    return outcome.orders[0]
