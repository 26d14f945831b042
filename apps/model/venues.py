"""The broker interface every venue adapter implements: paper, Kraken (ccxt), IBKR (ib_async).

Adapters speak plain values, never ORM rows: ``submit`` takes a ``VenueOrder`` (built
from an ``Order`` row by ``apps.trading.venues.mapping.venue_order``), and every query answers with the frozen
``Broker*`` values below, in our instrument symbols (an adapter maps them to and from
the broker's). Quantities are unsigned with a side, except ``BrokerPosition.quantity``
which is signed (negative is short). Money and quantities are ``Decimal``; times are
aware UTC ``datetime``.

Errors: ``VenueRejected`` (the broker refused; carries the broker's reason and code) ends
an order as REJECTED; ``VenueTemporaryError`` (network, timeout, rate limit, broker
down) means the outcome is unknown: the order stays in flight and a status query or
reconciliation settles it. It is never resent blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from apps.model.orders import Fill, OrderStatus
from apps.model.orders import Fill as FillValue
from apps.model.values import OrderType, Side


class VenueError(Exception):
    """Base of broker errors."""


class VenueTemporaryError(VenueError):
    """Network trouble, a timeout or a rate limit: the outcome of a send is unknown."""


class VenueRejected(VenueError):
    """The broker refused the request; ``code`` is the broker's own error code/prefix."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class VenueConfigurationError(VenueError):
    """The adapter cannot be built from the configuration (missing key, refused endpoint)."""


class ConnectionState(StrEnum):
    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class VenueOrder:
    """What an adapter needs to place one order."""

    client_order_id: str
    instrument: str  # our symbol, e.g. "BTC-USD" or "AAPL"
    base: str
    quote: str
    asset_class: str  # "crypto" | "equity" (apps.marketdata.models.AssetClass values)
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    reduce_only: bool = False
    broker_order_id: str | None = None  # known once acknowledged (cancel, status)
    # The bar the decision was made on: the paper broker fills the order on later bars
    # only (no look-ahead). Real brokers ignore it.
    decision_bar_ts: datetime | None = None


@dataclass(frozen=True)
class VenueAck:
    broker_order_id: str


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker reports it."""

    broker_order_id: str
    client_order_id: str | None  # None: the broker has no id of ours (placed elsewhere)
    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    filled_quantity: Decimal
    status: OrderStatus  # mapped onto our state machine
    limit_price: Decimal | None = None
    avg_fill_price: Decimal | None = None
    reason: str = ""  # the broker's reason for a rejection or cancel


@dataclass(frozen=True)
class BrokerFill:
    """One execution as the broker reports it; ``trade_id`` is the broker's execution id."""

    trade_id: str
    broker_order_id: str
    client_order_id: str | None
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal  # in the account currency
    ts: datetime

    def to_fill(self, client_order_id: str) -> FillValue:
        return FillValue(
            trade_id=self.trade_id,
            client_order_id=client_order_id,
            instrument=self.instrument,
            side=self.side,
            quantity=self.quantity,
            price=self.price,
            fee=self.fee,
            ts=self.ts,
        )


@dataclass(frozen=True)
class BrokerPosition:
    instrument: str
    quantity: Decimal  # signed
    avg_price: Decimal | None = None


@dataclass(frozen=True)
class BrokerBalance:
    currency: str
    total: Decimal  # cash (and, for crypto, the coin's total balance)
    available: Decimal | None = None


class Venue(Protocol):
    """One broker account. Every call is synchronous and may raise ``VenueError``."""

    name: str
    # True when a cancel is final the moment it returns (paper); False when the broker
    # confirms later (the order waits in PENDING_CANCEL).
    cancel_is_immediate: bool

    def connect(self) -> None:
        """Open (or check) the session; raises ``VenueTemporaryError`` when unreachable."""
        ...

    def close(self) -> None: ...

    def fill_at_mark(self, order: VenueOrder, *, mark: Decimal, ts: datetime) -> Fill | None:
        """An emergency close's fill NOW at ``mark`` where the venue can give one (the
        paper broker, whose book is ours); None where the broker reports fills later."""
        ...

    def connection_state(self) -> ConnectionState: ...

    def heartbeat(self) -> None:
        """Prove the session is alive (and refresh a dead-man switch where one is armed)."""
        ...

    def submit(self, order: VenueOrder) -> VenueAck:
        """Send ``order``; its client_order_id is the idempotency key."""
        ...

    def cancel(self, order: VenueOrder) -> None: ...

    def cancel_all(self) -> int:
        """The venue's own mass cancel (kill switch); returns how many it cancelled if known."""
        ...

    def order_status(self, order: VenueOrder) -> BrokerOrder | None:
        """The broker's view of one of our orders; None when the broker never received it."""
        ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def fills_since(self, since: datetime) -> list[BrokerFill]: ...

    def positions(self) -> list[BrokerPosition]: ...

    def balances(self) -> list[BrokerBalance]: ...
