"""Domain exceptions shared by the pure core.

Every error carries a human ``message``, a stable machine ``code`` and free-form
``extra`` data, so callers (services, tasks, views) can log and map them without
parsing strings. Classes are split by what the caller should do about them.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every error raised by ``apps.*.domain``.

    Parameters
    ----------
    message
        Human-readable explanation.
    **extra
        Structured context (ids, numbers) kept in ``.extra``.
    """

    code: str = "domain_error"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, object] = extra

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, extra={self.extra!r})"


class OrderStateError(DomainError):
    """Illegal order status transition or inconsistent fill: flag for reconciliation."""

    code = "order_state"


class DuplicateFillError(OrderStateError):
    """A fill whose trade id was already applied to the order."""

    code = "duplicate_fill"


class OverfillError(OrderStateError):
    """A fill that would take the filled quantity beyond the order quantity."""

    code = "overfill"


class InvalidOrderError(DomainError):
    """Bad order parameters (quantity, price, side, type)."""

    code = "invalid_order"


class MarketDataError(DomainError):
    """Bad or unreadable market data.

    Parameters
    ----------
    message
        Human-readable explanation, ideally saying what to do.
    reason
        Machine reason, e.g. ``"high_below_low"`` or ``"bad_header"``.
    source
        File name or feed name the data came from.
    line
        1-based line number in ``source`` when known.
    **extra
        Further structured context.
    """

    code = "market_data"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        source: str = "",
        line: int | None = None,
        **extra: object,
    ) -> None:
        super().__init__(message, reason=reason, source=source, line=line, **extra)
        self.reason = reason
        self.source = source
        self.line = line
