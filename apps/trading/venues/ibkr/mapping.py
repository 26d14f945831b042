"""IB's values onto ours: order statuses, IB's floats as ``Decimal``, a trade's ``permId``."""

from __future__ import annotations

import math
from decimal import Decimal

from ib_async.order import OrderStatus as IbStatus
from ib_async.order import Trade
from ib_async.util import UNSET_DOUBLE

from apps.model.orders import OrderStatus


def _dec(value: float | None) -> Decimal | None:
    """IB's float (UNSET_DOUBLE for "none") as a Decimal, via its shortest repr."""
    if value is None or value == UNSET_DOUBLE or math.isnan(value) or math.isinf(value):
        return None
    return Decimal(repr(float(value)))


def _perm_id(trade: Trade) -> int:
    if trade.order.permId:
        return trade.order.permId
    if trade.orderStatus.permId:
        return trade.orderStatus.permId
    for fill in trade.fills:
        if fill.execution.permId:
            return fill.execution.permId
    return 0


def order_status_map(ib_status: str, *, filled: Decimal, rejected: bool) -> OrderStatus:
    """IB's order status onto ours. ``rejected``: IB refused it (an error or its reason)."""
    if ib_status in (IbStatus.PendingSubmit, IbStatus.ApiPending):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    if ib_status == IbStatus.PendingCancel:
        return OrderStatus.PENDING_CANCEL
    if ib_status == IbStatus.Filled:
        return OrderStatus.FILLED
    if ib_status in (IbStatus.Cancelled, IbStatus.ApiCancelled):
        return OrderStatus.REJECTED if rejected and filled == 0 else OrderStatus.CANCELED
    if ib_status == IbStatus.Inactive:
        # "received but no longer active because it was rejected or cancelled"
        return OrderStatus.REJECTED if filled == 0 else OrderStatus.CANCELED
    # PreSubmitted, Submitted, ApiUpdate, ValidationError (a warning; still working)
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
