"""The broker interface every venue adapter implements (paper now; Kraken and IBKR later)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from apps.trading.models import Order


class VenueError(Exception):
    """Base of broker errors."""


class VenueTemporaryError(VenueError):
    """Network trouble or a rate limit: the outcome of a send is unknown, never resend blindly."""


class VenueRejected(VenueError):
    """The broker refused the order: it becomes REJECTED."""


@dataclass(frozen=True)
class VenueAck:
    broker_order_id: str


class Venue(Protocol):
    name: str

    def submit(self, order: Order) -> VenueAck:
        """Send ``order``; the order's client_order_id is the idempotency key."""
        ...

    def cancel(self, order: Order) -> None: ...
