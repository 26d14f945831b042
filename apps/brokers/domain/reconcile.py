"""Reconciliation's comparison: our books against the broker's, as plain values.

Pure and linear: every input is indexed once in a dict, so 10,000 orders and 2,000
positions compare in a few milliseconds (bench/reconcile.py). The service settles
what it can first (fills re-requested and applied, in-flight orders asked about);
what still differs here is a discrepancy, and any discrepancy pauses trading.

Each finding has a stable ``key`` (kind + what it is about), so the same difference
seen by consecutive runs is one open discrepancy, not one per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from apps.model.orders import OrderStatus
from apps.model.venues import BrokerOrder


class DiscrepancyKind(StrEnum):
    POSITION = "position"  # quantities differ (or one side has none)
    UNKNOWN_ORDER = "unknown_order"  # the broker has an open order we never sent
    MISSING_ORDER = "missing_order"  # we think it is open; the broker does not have it
    ORDER_FILLED_QUANTITY = "order_filled_quantity"  # both have it; filled amounts differ
    UNKNOWN_FILL = "unknown_fill"  # an execution of an order we do not know
    CASH = "cash"  # the account currency's balance differs


@dataclass(frozen=True)
class OurOrder:
    client_order_id: str
    broker_order_id: str | None
    instrument: str
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal


@dataclass(frozen=True)
class Finding:
    kind: DiscrepancyKind
    key: str
    instrument: str
    ours: str
    broker: str
    detail: str


def _fmt(value: Decimal | None) -> str:
    return "none" if value is None else format(value.normalize(), "f")


def compare_positions(
    ours: Mapping[str, Decimal], broker: Mapping[str, Decimal], *, tolerance: Decimal
) -> list[Finding]:
    found = []
    for instrument in sorted(set(ours) | set(broker)):
        a = ours.get(instrument, Decimal(0))
        b = broker.get(instrument, Decimal(0))
        if abs(a - b) > tolerance:
            found.append(
                Finding(
                    DiscrepancyKind.POSITION,
                    f"position:{instrument}",
                    instrument,
                    _fmt(a),
                    _fmt(b),
                    f"{instrument}: we hold {_fmt(a)}, the broker reports {_fmt(b)} "
                    f"(difference {_fmt(b - a)})",
                )
            )
    return found


def compare_orders(
    ours: Iterable[OurOrder], broker_open: Iterable[BrokerOrder], *, tolerance: Decimal
) -> list[Finding]:
    """Our open orders (sent, not final) against the broker's open orders."""
    found = []
    by_client: dict[str, BrokerOrder] = {}
    by_broker: dict[str, BrokerOrder] = {}
    order: BrokerOrder | OurOrder  # the broker's orders, then ours
    for order in broker_open:
        if order.client_order_id:
            by_client[order.client_order_id] = order
        by_broker[order.broker_order_id] = order
    matched: set[str] = set()
    for order in ours:
        theirs = by_client.get(order.client_order_id)
        if theirs is None and order.broker_order_id:
            theirs = by_broker.get(order.broker_order_id)
        if theirs is None:
            found.append(
                Finding(
                    DiscrepancyKind.MISSING_ORDER,
                    f"missing_order:{order.client_order_id}",
                    order.instrument,
                    f"{order.status.value}, filled {_fmt(order.filled_quantity)}/{_fmt(order.quantity)}",
                    "not open at the broker",
                    f"order {order.client_order_id} is {order.status.value} here but the broker "
                    "has no such open order",
                )
            )
            continue
        matched.add(theirs.broker_order_id)
        if abs(theirs.filled_quantity - order.filled_quantity) > tolerance:
            found.append(
                Finding(
                    DiscrepancyKind.ORDER_FILLED_QUANTITY,
                    f"order_filled_quantity:{order.client_order_id}",
                    order.instrument,
                    _fmt(order.filled_quantity),
                    _fmt(theirs.filled_quantity),
                    f"order {order.client_order_id}: filled {_fmt(order.filled_quantity)} here, "
                    f"{_fmt(theirs.filled_quantity)} at the broker",
                )
            )
    for order in by_broker.values():
        if order.broker_order_id not in matched:
            found.append(
                Finding(
                    DiscrepancyKind.UNKNOWN_ORDER,
                    f"unknown_order:{order.broker_order_id}",
                    order.instrument,
                    "no such order",
                    f"{order.side.value} {_fmt(order.quantity)} {order.status.value}",
                    f"the broker has open order {order.broker_order_id} "
                    f"({order.side.value} {_fmt(order.quantity)} {order.instrument}, "
                    f"client id {order.client_order_id or 'none'}) that we never sent",
                )
            )
    return found


def compare_cash(
    currency: str, ours: Decimal, broker: Decimal | None, *, tolerance: Decimal
) -> list[Finding]:
    if broker is None or abs(ours - broker) <= tolerance:
        return []
    return [
        Finding(
            DiscrepancyKind.CASH,
            f"cash:{currency}",
            "",
            _fmt(ours),
            _fmt(broker),
            f"{currency} cash: {_fmt(ours)} here, {_fmt(broker)} at the broker "
            f"(difference {_fmt(broker - ours)})",
        )
    ]


def unknown_fill(
    trade_id: str, instrument: str, side: str, quantity: Decimal, broker_order_id: str
) -> Finding:
    return Finding(
        DiscrepancyKind.UNKNOWN_FILL,
        f"unknown_fill:{trade_id}",
        instrument,
        "no such order",
        f"{side} {_fmt(quantity)}",
        f"the broker reports execution {trade_id} ({side} {_fmt(quantity)} {instrument}) of "
        f"order {broker_order_id}, which we never sent",
    )
