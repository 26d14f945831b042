"""Value objects of the trading domain: sides, order types, instruments."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum


class Side(StrEnum):
    """Order or fill side."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """Return ``1`` for BUY and ``-1`` for SELL."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """Return the other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    """How an order is priced."""

    MARKET = "market"
    LIMIT = "limit"


class AssetClass(StrEnum):
    """Broad asset class of an instrument."""

    CRYPTO = "crypto"
    EQUITY = "equity"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable pair ``BASE-QUOTE`` with optional price/quantity increments.

    ``tick_size`` and ``lot_size`` must be positive when given (``ValueError`` otherwise).
    """

    symbol: str
    base: str
    quote: str
    asset_class: AssetClass = AssetClass.CRYPTO
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size"):
            increment = getattr(self, name)
            if increment is not None and not (
                isinstance(increment, Decimal) and increment.is_finite() and increment > 0
            ):
                raise ValueError(
                    f"{self.symbol}: {name} must be a positive Decimal, got {increment!r}"
                )

    def round_quantity(self, quantity: Decimal) -> Decimal:
        """Round ``quantity`` toward zero to a multiple of ``lot_size``.

        Parameters
        ----------
        quantity
            Quantity to round.

        Returns
        -------
        Decimal
            The rounded quantity, or ``quantity`` unchanged when there is no lot size.
        """
        if self.lot_size is None:
            return quantity
        lots = (quantity / self.lot_size).to_integral_value(rounding=ROUND_DOWN)
        return lots * self.lot_size

    def round_price(self, price: Decimal) -> Decimal:
        """Round ``price`` to the nearest multiple of ``tick_size`` (ties away from zero).

        Parameters
        ----------
        price
            Price to round.

        Returns
        -------
        Decimal
            The rounded price, or ``price`` unchanged when there is no tick size.
        """
        if self.tick_size is None:
            return price
        ticks = (price / self.tick_size).to_integral_value(rounding=ROUND_HALF_UP)
        return ticks * self.tick_size

    @classmethod
    def from_symbol(
        cls,
        symbol: str,
        *,
        asset_class: AssetClass = AssetClass.CRYPTO,
        tick_size: Decimal | None = None,
        lot_size: Decimal | None = None,
    ) -> Instrument:
        """Build an instrument from ``"BASE-QUOTE"`` (``"BASE/QUOTE"`` is accepted too).

        Parameters
        ----------
        symbol
            E.g. ``"ETH-BTC"`` -> base ``ETH``, quote ``BTC``.
        asset_class, tick_size, lot_size
            Passed through to the instrument.

        Returns
        -------
        Instrument
            The instrument; ``symbol`` is kept as given.

        Raises
        ------
        ValueError
            If the symbol is not two non-empty parts joined by ``-`` or ``/``.
        """
        parts = symbol.replace("/", "-").split("-")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"instrument symbol {symbol!r} is not of the form BASE-QUOTE")
        base, quote = parts
        return cls(
            symbol=symbol,
            base=base,
            quote=quote,
            asset_class=asset_class,
            tick_size=tick_size,
            lot_size=lot_size,
        )
