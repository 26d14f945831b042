"""Kraken's answers into our values: symbols, order statuses, and exact numbers.

The readers (``_dec``, ``_str``, ``_dict``) take Kraken's own strings into ``Decimal`` (never
through ccxt's floats) and raise ``_Malformed`` for a field that is missing or unreadable;
the adapter counts and reports that as a malformed response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.model.orders import OrderStatus


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTC-USD"`` (or ``"BTC/USD"``) -> ``("BTC", "USD")``; ``ValueError`` otherwise."""
    parts = symbol.replace("/", "-").split("-")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(f"instrument symbol {symbol!r} is not of the form BASE-QUOTE")
    return parts[0].strip().upper(), parts[1].strip().upper()


class SymbolMap:
    """Our ``BASE-QUOTE`` symbols <-> ccxt's ``BASE/QUOTE``, through ccxt's currency codes.

    ``currency_code`` is ccxt's ``safe_currency_code`` (XBT and XXBT -> BTC, ZUSD -> USD,
    plus what ``load_markets`` learnt from Kraken's Assets). Our configured
    instruments keep their own spelling on the way back: with ``XBT-USD`` configured,
    ccxt's ``BTC/USD`` maps to ``XBT-USD``; an unknown market maps to ``BASE-QUOTE``.
    """

    def __init__(self, instruments: Iterable[str], currency_code: Callable[[str], str]) -> None:
        self._code = currency_code
        self._ours: dict[str, str] = {}  # ccxt symbol -> our symbol
        self._currency: dict[str, str] = {}  # ccxt code -> our spelling
        self.instruments: list[str] = []
        for symbol in instruments:
            self.add(symbol)

    def add(self, symbol: str, base: str | None = None, quote: str | None = None) -> str:
        """Register one of our symbols; return its ccxt symbol."""
        if base is None or quote is None:
            base, quote = split_symbol(symbol)
        ccxt_symbol = self.to_ccxt(base, quote)
        if ccxt_symbol not in self._ours:
            self._ours[ccxt_symbol] = symbol
            self.instruments.append(symbol)
        for ours in (base.upper(), quote.upper()):
            self._currency.setdefault(self._code(ours), ours)
        return ccxt_symbol

    def to_ccxt(self, base: str, quote: str) -> str:
        return f"{self._code(base.upper())}/{self._code(quote.upper())}"

    def to_ours(self, ccxt_symbol: str) -> str:
        if ccxt_symbol in self._ours:
            return self._ours[ccxt_symbol]
        base, quote = split_symbol(ccxt_symbol)
        return f"{base}-{quote}"

    def currency(self, code: str) -> str:
        """A ccxt currency code in our spelling (``BTC`` stays ``BTC`` unless we say ``XBT``)."""
        return self._currency.get(code, code)

    def base_code(self, symbol: str) -> str:
        return self._code(split_symbol(symbol)[0])


def order_status_from_kraken(status: str, filled: Decimal, quantity: Decimal) -> OrderStatus:
    """Kraken's order status on our state machine.

    ``closed`` is Kraken's "done": FILLED when all of it executed, otherwise CANCELED
    (a market order that ran out of book). ``ValueError`` for a status Kraken does not have.
    """
    if status in ("pending", "open"):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    if status == "closed":
        return OrderStatus.FILLED if filled >= quantity else OrderStatus.CANCELED
    if status == "canceled":
        return OrderStatus.CANCELED
    if status == "expired":
        return OrderStatus.EXPIRED
    raise ValueError(f"unknown Kraken order status {status!r}")


class _Malformed(Exception):
    """A field missing or unreadable in a Kraken answer (raised while parsing)."""


def _dec(value: Any, what: str) -> Decimal:
    if value is None or isinstance(value, bool):
        raise _Malformed(f"{what} is missing")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _Malformed(f"{what} is not a number: {value!r}") from None
    if not number.is_finite():
        raise _Malformed(f"{what} is not a finite number: {value!r}")
    return number


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{what} is missing")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is missing")
    return value
