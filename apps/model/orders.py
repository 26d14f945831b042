"""Orders: status state machine, intents, fills and the mutable order state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from apps.model.errors import (
    DuplicateFillError,
    InvalidOrderError,
    OrderStateError,
    OverfillError,
)
from apps.model.values import OrderType, Side

_ZERO = Decimal(0)


class OrderStatus(StrEnum):
    """Lifecycle status of an order."""

    INITIALIZED = "initialized"
    DENIED = "denied"
    SUBMITTED = "submitted"  # handed to the broker, outcome unknown until ack
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """Return True when no further transition is possible."""
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """Return True while the order may still be working at the venue."""
        return self in _OPEN


_S = OrderStatus

_TERMINAL: frozenset[OrderStatus] = frozenset(
    {_S.DENIED, _S.REJECTED, _S.FILLED, _S.CANCELED, _S.EXPIRED}
)
_OPEN: frozenset[OrderStatus] = frozenset(
    {_S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED, _S.PENDING_CANCEL}
)

# The statuses of an order sent and not final: what the broker may still hold.
SENT_OPEN_STATUSES: tuple[str, ...] = tuple(s.value for s in OrderStatus if s.is_open)
# Every status of an order not yet final, as stored: the sent ones plus INITIALIZED
# (recorded, not sent yet). The one list every query of "open orders" uses.
OPEN_STATUSES: tuple[str, ...] = SENT_OPEN_STATUSES + (OrderStatus.INITIALIZED.value,)

ORDER_TRANSITIONS: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (_S.INITIALIZED, _S.DENIED),  # risk check refused it
        (_S.INITIALIZED, _S.SUBMITTED),
        (_S.SUBMITTED, _S.ACCEPTED),
        (_S.SUBMITTED, _S.REJECTED),
        (_S.SUBMITTED, _S.CANCELED),  # real world: canceled before the ack arrived
        (_S.SUBMITTED, _S.EXPIRED),  # real world: IOC/FOK expiring before the ack
        (_S.SUBMITTED, _S.PARTIALLY_FILLED),  # real world: fill report overtakes the ack
        (_S.SUBMITTED, _S.FILLED),  # real world: fill report overtakes the ack
        (_S.ACCEPTED, _S.PARTIALLY_FILLED),
        (_S.ACCEPTED, _S.FILLED),
        (_S.ACCEPTED, _S.PENDING_CANCEL),
        (_S.ACCEPTED, _S.CANCELED),
        (_S.ACCEPTED, _S.EXPIRED),
        (_S.PARTIALLY_FILLED, _S.PARTIALLY_FILLED),
        (_S.PARTIALLY_FILLED, _S.FILLED),
        (_S.PARTIALLY_FILLED, _S.PENDING_CANCEL),
        (_S.PARTIALLY_FILLED, _S.CANCELED),
        (_S.PARTIALLY_FILLED, _S.EXPIRED),
        (_S.PENDING_CANCEL, _S.CANCELED),
        (_S.PENDING_CANCEL, _S.PARTIALLY_FILLED),  # real world: filled while cancel in flight
        (_S.PENDING_CANCEL, _S.FILLED),  # real world: filled while cancel in flight
        (_S.PENDING_CANCEL, _S.ACCEPTED),  # cancel rejected, order still working
    }
)


def transition(current: OrderStatus, new: OrderStatus) -> OrderStatus:
    """Validate the status change ``current -> new``.

    Parameters
    ----------
    current
        Status the order is in.
    new
        Status it should move to.

    Returns
    -------
    OrderStatus
        ``new`` when the edge is in ``ORDER_TRANSITIONS``.

    Raises
    ------
    OrderStateError
        On an illegal edge (including any edge out of a terminal status).
    """
    if (current, new) not in ORDER_TRANSITIONS:
        raise OrderStateError(
            f"illegal order transition {current} -> {new}", current=str(current), new=str(new)
        )
    return new


def _require_positive(value: object, what: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidOrderError(
            f"{what} must be a positive Decimal, got {value!r}", **{what: value}
        )


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy wants to trade, before risk checks.

    Raises ``InvalidOrderError`` when the quantity is not positive, the side or type is
    unknown, or a limit price is missing for LIMIT / present for MARKET / not positive.
    """

    instrument: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    decision_price: Decimal | None = None
    reduce_only: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "side", Side(self.side))
            object.__setattr__(self, "order_type", OrderType(self.order_type))
        except ValueError as exc:
            raise InvalidOrderError(str(exc)) from None
        _require_positive(self.quantity, "quantity")
        if self.order_type is OrderType.LIMIT:
            if self.limit_price is None:
                raise InvalidOrderError("limit order needs a limit_price")
            _require_positive(self.limit_price, "limit_price")
        elif self.limit_price is not None:
            raise InvalidOrderError("market order must not have a limit_price")
        if self.decision_price is not None:
            _require_positive(self.decision_price, "decision_price")


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (trade) against an order. ``quantity`` is unsigned."""

    trade_id: str
    client_order_id: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime

    @property
    def notional(self) -> Decimal:
        """Return ``quantity * price`` (unsigned)."""
        return self.quantity * self.price


@dataclass(slots=True)
class OrderState:
    """Mutable state of one order as we know it.

    ``avg_fill_price`` is the volume-weighted average of the fills; it is computed from the
    exact running ``filled_notional`` so no rounding error accumulates across fills.
    """

    client_order_id: str
    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    status: OrderStatus = OrderStatus.INITIALIZED
    filled_quantity: Decimal = _ZERO
    avg_fill_price: Decimal | None = None
    fees: Decimal = _ZERO
    trade_ids: set[str] = field(default_factory=set)
    filled_notional: Decimal = _ZERO

    @classmethod
    def from_intent(cls, client_order_id: str, intent: OrderIntent) -> OrderState:
        """Create an INITIALIZED order from an intent.

        Parameters
        ----------
        client_order_id
            Our idempotency key for the order.
        intent
            The validated intent.

        Returns
        -------
        OrderState
            A fresh order with nothing filled.
        """
        return cls(
            client_order_id=client_order_id,
            instrument=intent.instrument,
            side=intent.side,
            order_type=intent.order_type,
            quantity=intent.quantity,
            limit_price=intent.limit_price,
        )

    @property
    def remaining(self) -> Decimal:
        """Return the quantity still to fill."""
        return self.quantity - self.filled_quantity

    def apply(self, new_status: OrderStatus) -> None:
        """Move to ``new_status``; raises ``OrderStateError`` on an illegal edge.

        Parameters
        ----------
        new_status
            Target status.
        """
        self.status = transition(self.status, new_status)

    def apply_fill(self, fill: Fill) -> None:
        """Apply ``fill`` exactly once; on any error nothing changes.

        Moves the order to PARTIALLY_FILLED, or FILLED when nothing remains.

        Parameters
        ----------
        fill
            The execution to apply.

        Raises
        ------
        DuplicateFillError
            If ``fill.trade_id`` was applied before.
        OverfillError
            If the fill would exceed the order quantity.
        OrderStateError
            If the fill belongs to another order/instrument/side, or the order's status
            cannot take a fill (e.g. CANCELED).
        """
        if fill.trade_id in self.trade_ids:
            raise DuplicateFillError(
                f"trade {fill.trade_id} already applied to order {self.client_order_id}",
                client_order_id=self.client_order_id,
                trade_id=fill.trade_id,
            )
        if (
            fill.client_order_id != self.client_order_id
            or fill.instrument != self.instrument
            or fill.side is not self.side
        ):
            raise OrderStateError(
                f"fill {fill.trade_id} ({fill.client_order_id} {fill.instrument} {fill.side}) "
                f"does not belong to order {self.client_order_id} "
                f"({self.instrument} {self.side})",
                client_order_id=self.client_order_id,
                trade_id=fill.trade_id,
            )
        if fill.quantity <= 0:
            raise OrderStateError(
                f"fill {fill.trade_id} has non-positive quantity {fill.quantity}",
                client_order_id=self.client_order_id,
                trade_id=fill.trade_id,
            )
        filled = self.filled_quantity + fill.quantity
        if filled > self.quantity:
            raise OverfillError(
                f"fill {fill.trade_id} of {fill.quantity} overfills order "
                f"{self.client_order_id}: {filled} > {self.quantity}",
                client_order_id=self.client_order_id,
                trade_id=fill.trade_id,
                quantity=str(self.quantity),
                filled_quantity=str(self.filled_quantity),
                fill_quantity=str(fill.quantity),
            )
        target = OrderStatus.FILLED if filled == self.quantity else OrderStatus.PARTIALLY_FILLED
        new_status = transition(self.status, target)  # raises before anything is mutated
        notional = self.filled_notional + fill.quantity * fill.price
        self.status = new_status
        self.filled_quantity = filled
        self.filled_notional = notional
        self.avg_fill_price = notional / filled
        self.fees += fill.fee
        self.trade_ids.add(fill.trade_id)
