"""The idempotent send: the last-moment gate, one broker call per order, never twice."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.core import influx
from apps.marketdata.models import Instrument
from apps.model.orders import OrderStatus
from apps.model.venues import (
    VenueRejected,
    VenueTemporaryError,
)
from apps.notifications.services.notifications import notify_on_commit
from apps.risk.domain.checks import CheckResult, RiskContext, check_mode
from apps.risk.domain.modes import SystemMode
from apps.risk.models import SystemState
from apps.risk.services.modes import system_mode_lock_shared
from apps.trading import realtime
from apps.trading.models import Order, Position
from apps.trading.selectors import columns_sql, instance_from_row
from apps.trading.services.common import KILL_ORDER_PREFIX, order_intent, set_status, venue_for
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
    order row is locked: the documented lock order (SystemState -> Order), and one
    round trip instead of three.
    """
    if not _SEND_SQL:
        order, account, instrument = _sql_table(Order), _sql_table(Account), _sql_table(Instrument)
        state, position = _sql_table(SystemState), _sql_table(Position)
        mode = f'(SELECT s."mode" FROM {state} s WHERE s."id" = 1 FOR SHARE)'  # noqa: S608
        # Names from the models, values as parameters.
        _SEND_SQL["order"] = f"""
            SELECT {columns_sql(Order, "o")}, {columns_sql(Account, "a")},
                {columns_sql(Instrument, "i")}, {mode},
                (SELECT p."quantity" FROM {position} p
                  WHERE p."account_id" = o."account_id" AND p."instrument_id" = o."instrument_id")
            FROM {order} o
            JOIN {account} a ON a."id" = o."account_id"
            JOIN {instrument} i ON i."id" = o."instrument_id"
            WHERE o."id" = %s
            FOR UPDATE OF o
        """  # noqa: S608
        _SEND_SQL["gate"] = f"""
            SELECT {mode}, (SELECT p."quantity" FROM {position} p
                             WHERE p."account_id" = %s AND p."instrument_id" = %s)
        """  # noqa: S608
    return _SEND_SQL[name]


def _order_lock_for_send(order_id: int) -> tuple[Order, SystemMode, Decimal]:
    """The order (with its account and instrument) under its row lock, the mode under a
    share lock of the mode row, and the account's position in it: one statement (in a
    transaction). Raises ``Order.DoesNotExist`` for an unknown id."""
    with connection.cursor() as cursor:
        cursor.execute(_send_sql("order"), [order_id])
        row = cursor.fetchone()
    if row is None:
        raise Order.DoesNotExist(f"Order matching query does not exist: id {order_id}")
    order, at = instance_from_row(Order, row, 0)
    order.account, at = instance_from_row(Account, row, at)
    order.instrument, at = instance_from_row(Instrument, row, at)
    mode, quantity = row[at], row[at + 1]
    if mode is None:  # no SystemState row yet: created (NORMAL) and locked as everywhere else
        return order, system_mode_lock_shared(), quantity or Decimal(0)
    return order, SystemMode(mode), quantity if quantity is not None else Decimal(0)


def _send_gate(order: Order) -> tuple[SystemMode, CheckResult]:
    """The mode gate for ``order``, read under a share lock of the mode row (in a transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(_send_sql("gate"), [order.account_id, order.instrument_id])
        mode, quantity = cursor.fetchone()
    mode = SystemMode(mode) if mode is not None else system_mode_lock_shared()
    return mode, _gate(order, mode, quantity if quantity is not None else Decimal(0))


def _order_refuse(
    order: Order, status: OrderStatus, action: str, mode: SystemMode, gate: CheckResult, when: str
) -> None:
    """The mode gate said no: record why on the order and in the audit trail, push it."""
    set_status(order, status, f"mode {mode.value} {when}: {gate.detail}")
    order.save(update_fields=["status", "status_reason", "updated_at"])
    audit_record(
        actor="execution",
        action=action,
        target=order.client_order_id,
        data={"mode": mode.value, "detail": gate.detail},
    )
    realtime.broadcast_order(order)


def order_send(*, order_id: int) -> Order:
    """Send one order to its broker, at most once, never after a PAUSE or KILL that forbids it.

    1. Under the order's row lock: only an INITIALIZED order goes on (a retried or
       redelivered task finds it SUBMITTED or later and returns); the mode gate is
       checked (in KILL, every order but the kill switch's own reduce-only closing
       orders is denied). The order is marked SUBMITTED and committed BEFORE the
       broker is called: after a crash it is "in flight", settled by a status query
       or reconciliation, never resent blindly.
    2. The broker call runs inside a transaction that holds a share lock of the mode
       row and checks the gate again. A mode change takes that row FOR UPDATE, so it
       waits for a send in progress, and no send starts after it: an order that the
       new mode forbids is CANCELED without reaching the broker.
    3. The ack (or the rejection) is recorded.
    """
    with transaction.atomic():
        order, mode, position_quantity = _order_lock_for_send(order_id)
        if order.status != OrderStatus.INITIALIZED:
            logger.info("order %s already %s: not sent again", order.client_order_id, order.status)
            return order
        gate = _gate(order, mode, position_quantity)
        if not gate.passed:
            _order_refuse(
                order, OrderStatus.DENIED, "order.denied_at_send", mode, gate, "at send time"
            )
            return order
        set_status(order, OrderStatus.SUBMITTED)
        order.submitted_at = timezone.now()
        order.save(update_fields=["status", "submitted_at", "updated_at"])

    venue = venue_for(order.account)
    try:
        with transaction.atomic():
            mode, gate = _send_gate(order)
            if not gate.passed:
                order = Order.objects.select_for_update().get(pk=order_id)
                if order.status == OrderStatus.SUBMITTED:
                    _order_refuse(
                        order, OrderStatus.CANCELED, "order.withheld", mode, gate, "before send"
                    )
                return order
            ack = venue.submit(venue_order(order))
        audit_record(
            actor="execution",
            action="order.sent",
            target=order.client_order_id,
            data={"venue": venue.name, "broker_order_id": ack.broker_order_id},
        )
    except VenueRejected as exc:
        with transaction.atomic():
            order = Order.objects.select_for_update().select_related("instrument").get(pk=order_id)
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
        return order
    except VenueTemporaryError:
        logger.warning(
            "order %s: outcome unknown after send; left SUBMITTED for reconciliation",
            order.client_order_id,
        )
        raise

    with transaction.atomic():
        order = Order.objects.select_for_update().select_related("instrument").get(pk=order_id)
        order.broker_order_id = ack.broker_order_id
        if order.status == OrderStatus.SUBMITTED:
            set_status(order, OrderStatus.ACCEPTED)
        order.save(update_fields=["status", "broker_order_id", "updated_at"])
        realtime.broadcast_order(order)
    if settings.INFLUXDB_URL:  # decided -> acknowledged by the broker: the order path's latency
        now = timezone.now()
        influx.write_latency(
            kind="order",
            seconds=(now - order.created_at).total_seconds(),
            ts=now,
            account=order.account.name,
            instrument=order.instrument.symbol,
        )
    return order
