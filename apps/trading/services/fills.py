"""Fills booked exactly once, one at a time or many of one account at once."""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.core import influx
from apps.core.db import rows_update
from apps.model.accounting import Position as PositionValue
from apps.model.orders import Fill as FillValue
from apps.model.orders import OrderState, OrderStatus
from apps.model.values import OrderType, Side
from apps.notifications.services.records import info_record_many_on_commit
from apps.trading import realtime
from apps.trading.models import Fill, Order, Position
from apps.trading.services.common import BULK_BROADCAST_LIMIT, money

logger = logging.getLogger(__name__)


def _order_state(order: Order, trade_ids: set[str]) -> OrderState:
    return OrderState(
        client_order_id=order.client_order_id,
        instrument=order.instrument.symbol,
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        limit_price=order.limit_price,
        status=OrderStatus(order.status),
        filled_quantity=order.filled_quantity,
        avg_fill_price=order.avg_fill_price,
        fees=order.fees,
        trade_ids=trade_ids,
        filled_notional=(order.avg_fill_price or Decimal(0)) * order.filled_quantity,
    )


def _fill_book(
    *, fill: FillValue, state: OrderState, order: Order, position: Position, account: Account
) -> Fill:
    """Book one fill onto the in-memory account, position and order rows; return the unsaved
    Fill row.

    ``state`` already has the fill applied (which validated it). The caller holds the rows'
    locks (order -> position -> account) and saves them, one by one or in a batch. Money is
    rounded half-even to the database's 12 places once per fill.
    """
    value = PositionValue(
        instrument=order.instrument.symbol,
        quantity=position.quantity,
        avg_price=position.avg_price,
        realized_pnl=position.realized_pnl,
        fees=position.fees,
    )
    realized = value.apply_fill(fill)  # adds the fill's fee to value.fees (once)
    fee = money(fill.fee)
    notional = fill.quantity * fill.price
    account.cash = money(
        account.cash - notional - fee if fill.side is Side.BUY else account.cash + notional - fee
    )
    account.fees_paid = money(account.fees_paid + fee)
    account.realized_pnl = money(account.realized_pnl + realized)
    position.quantity = value.quantity
    position.avg_price = money(value.avg_price)
    position.realized_pnl = money(value.realized_pnl)
    position.fees = money(value.fees)
    position.last_price = fill.price
    order.status = state.status.value
    order.filled_quantity = state.filled_quantity
    order.avg_fill_price = money(state.avg_fill_price) if state.avg_fill_price is not None else None
    order.fees = money(state.fees)
    return Fill(
        account=account,
        order=order,
        trade_id=fill.trade_id,
        side=fill.side.value,
        quantity=fill.quantity,
        price=fill.price,
        fee=fee,
        realized_pnl=money(realized),
        ts=fill.ts,
    )


def fill_apply(*, fill: FillValue) -> Fill | None:
    """Apply one broker execution exactly once. Returns None when it was applied before.

    The one-fill case of ``fills_apply`` (one booking path for every fill).
    """
    rows = fills_apply(fills=[fill])
    if not rows:
        logger.info("fill %s already applied: ignored", fill.trade_id)
        return None
    return rows[0]


def fills_apply(*, fills: list[FillValue]) -> list[Fill]:
    """Apply executions of ONE account, each exactly once: the one booking path for fills
    (the engine's and reconciliation's one at a time through ``fill_apply``, the kill
    switch's closing fills in a batch).

    The order rows are locked, then the positions, then the account (the documented lock
    order), so every fill of an order is serialized and the "seen this trade id?" check
    cannot race; the (account, trade_id) unique constraint backs it. Each fill goes
    through ``OrderState.apply_fill`` (which refuses an overfill or an illegal status:
    nothing of the batch is written then) and the average-cost ``Position``, in a
    constant number of queries. A fill whose trade id was applied before is skipped.
    After the commit each new fill is written to InfluxDB and recorded as an info
    notification; the panel gets the first BULK_BROADCAST_LIMIT fills and orders.

    Raises
    ------
    Order.DoesNotExist
        A fill names an order we do not have (nothing is written).
    ValueError
        The fills belong to more than one account.
    """
    if not fills:
        return []
    with transaction.atomic():
        orders = {
            o.client_order_id: o
            for o in Order.objects.select_for_update(of=("self",))
            .select_related("instrument")
            .filter(client_order_id__in=[f.client_order_id for f in fills])
            .order_by("id")
        }
        unknown = sorted({f.client_order_id for f in fills} - set(orders))
        if unknown:
            raise Order.DoesNotExist(f"no order with client order id {unknown[0]!r}")
        account_ids = {o.account_id for o in orders.values()}
        if len(account_ids) != 1:
            raise ValueError(
                f"fills_apply takes the fills of one account, got {sorted(account_ids)}"
            )
        account_id = account_ids.pop()
        seen: dict[int, set[str]] = {o.pk: set() for o in orders.values()}
        for order_id, trade_id in Fill.objects.filter(order_id__in=seen).values_list(
            "order_id", "trade_id"
        ):
            seen[order_id].add(trade_id)
        instrument_ids = {o.instrument_id for o in orders.values()}
        Position.objects.bulk_create(
            [Position(account_id=account_id, instrument_id=i) for i in instrument_ids],
            ignore_conflicts=True,
        )
        positions = {
            p.instrument_id: p
            for p in Position.objects.select_for_update(of=("self",))
            .select_related("instrument")
            .filter(account_id=account_id, instrument_id__in=instrument_ids)
            .order_by("id")
        }
        account = Account.objects.select_for_update().get(pk=account_id)
        states: dict[int, OrderState] = {}
        rows: list[Fill] = []
        booked: list[FillValue] = []
        for fill in fills:
            order = orders[fill.client_order_id]
            if fill.trade_id in seen[order.pk]:
                continue
            state = states.get(order.pk) or _order_state(order, seen[order.pk])
            state.apply_fill(fill)  # raises on overfill: nothing of the batch is written
            states[order.pk] = state
            seen[order.pk].add(fill.trade_id)  # the same execution twice in one batch: once
            booked.append(fill)
            rows.append(
                _fill_book(
                    fill=fill,
                    state=state,
                    order=order,
                    position=positions[order.instrument_id],
                    account=account,
                )
            )
        if not rows:
            return []
        now = timezone.now()
        for order in orders.values():
            order.updated_at = now
        for position in positions.values():
            position.updated_at = now
        account.save(update_fields=["cash", "fees_paid", "realized_pnl"])
        rows_update(
            Position,
            list(positions.values()),
            ["quantity", "avg_price", "realized_pnl", "fees", "last_price", "updated_at"],
        )
        rows_update(
            Order,
            list(orders.values()),
            ["status", "filled_quantity", "avg_fill_price", "fees", "updated_at"],
        )
        Fill.objects.bulk_create(rows)
        for row in rows:
            transaction.on_commit(partial(influx.write_fill, row, row.order))
        info_record_many_on_commit(
            _fill_notice(row, fill) for row, fill in zip(rows, booked, strict=True)
        )
        for row in rows[:BULK_BROADCAST_LIMIT]:
            realtime.broadcast_fill(row, row.order)
            realtime.broadcast_order(row.order)
        realtime.broadcast_positions(account)
    return rows


def _fill_notice(row: Fill, fill: FillValue) -> dict[str, Any]:
    """The info notification of a booked fill (recorded, not pushed: table 5.1)."""
    order = row.order
    return {
        "code": "order.filled",
        "title": f"Fill {fill.trade_id}: {fill.side.value} {fill.quantity} {fill.instrument}",
        "body": f"at {fill.price}, fee {fill.fee}; order {order.client_order_id} {order.status}",
        "dedup_key": f"fill:{order.account_id}:{fill.trade_id}",
        "data": {"order": order.client_order_id, "trade_id": fill.trade_id},
    }
