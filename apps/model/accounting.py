"""Positions, cash ledger, fees and drawdown (average-cost accounting)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from apps.model.orders import Fill
from apps.model.values import Side

_ZERO = Decimal(0)


@dataclass(slots=True)
class Position:
    """Net position in one instrument, average-cost method.

    ``quantity`` is signed (short < 0); ``avg_price`` is the average entry price of the open
    quantity (0 when flat); ``realized_pnl`` excludes fees, which are summed in ``fees``.
    """

    instrument: str
    quantity: Decimal = _ZERO
    avg_price: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    fees: Decimal = _ZERO

    def apply_fill(self, fill: Fill) -> Decimal:
        """Apply ``fill`` and return the P&L it realized (before fees).

        Increasing the position moves the average price; reducing it realizes
        ``(price - avg_price) * closed * sign(position)`` and keeps the average; going
        through zero realizes on the closed part and opens the remainder at the fill price.

        Parameters
        ----------
        fill
            A fill for this position's instrument.

        Returns
        -------
        Decimal
            Realized P&L of this fill (0 when it only opens or adds).

        Raises
        ------
        ValueError
            If the fill is for another instrument.
        """
        if fill.instrument != self.instrument:
            raise ValueError(
                f"fill {fill.trade_id} is for {fill.instrument}, position is {self.instrument}"
            )
        current = self.quantity
        delta = fill.quantity if fill.side is Side.BUY else -fill.quantity
        new_quantity = current + delta
        realized = _ZERO
        if current == 0 or (current > 0) == (delta > 0):
            # Opening or adding: new average over the whole quantity.
            self.avg_price = (current * self.avg_price + delta * fill.price) / new_quantity
        else:
            closed = min(abs(delta), abs(current))
            direction = 1 if current > 0 else -1
            realized = (fill.price - self.avg_price) * closed * direction
            if new_quantity == 0:
                self.avg_price = _ZERO
            elif (new_quantity > 0) != (current > 0):
                # Flipped through zero: the remainder was opened at the fill price.
                self.avg_price = fill.price
        self.quantity = new_quantity
        self.realized_pnl += realized
        self.fees += fill.fee
        return realized

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """Return ``(mark - avg_price) * quantity`` (positive when the position gains)."""
        if self.quantity == 0:
            return _ZERO
        return (mark - self.avg_price) * self.quantity

    def notional(self, mark: Decimal) -> Decimal:
        """Return the gross exposure ``abs(quantity) * mark`` (never negative)."""
        return abs(self.quantity) * mark

    def market_value(self, mark: Decimal) -> Decimal:
        """Return the signed value ``quantity * mark`` (negative for shorts)."""
        return self.quantity * mark


@dataclass(slots=True)
class Ledger:
    """Cash plus positions of one account in one quote currency.

    A buy costs ``qty * price + fee``; a sell brings ``qty * price - fee``.
    """

    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    fees: Decimal = _ZERO

    def apply_fill(self, fill: Fill) -> Decimal:
        """Book ``fill`` into cash, fees and its position.

        Parameters
        ----------
        fill
            The execution to book (apply each fill once: the caller dedupes by trade id).

        Returns
        -------
        Decimal
            Realized P&L of the fill before fees.
        """
        position = self.positions.get(fill.instrument)
        if position is None:
            position = self.positions[fill.instrument] = Position(fill.instrument)
        realized = position.apply_fill(fill)
        notional = fill.quantity * fill.price
        if fill.side is Side.BUY:
            self.cash -= notional + fill.fee
        else:
            self.cash += notional - fill.fee
        self.fees += fill.fee
        return realized

    def position(self, instrument: str) -> Decimal:
        """Return the signed quantity held in ``instrument`` (0 when none)."""
        pos = self.positions.get(instrument)
        return pos.quantity if pos is not None else _ZERO

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Return ``cash + sum(quantity * mark)`` over open positions.

        Parameters
        ----------
        marks
            Mark price per instrument; needed for every non-flat position.

        Raises
        ------
        KeyError
            If an open position has no mark.
        """
        total = self.cash
        for instrument, pos in self.positions.items():
            if pos.quantity:
                total += pos.quantity * _mark(marks, instrument)
        return total

    @property
    def realized_pnl(self) -> Decimal:
        """Return realized P&L of all positions, before fees."""
        return sum((pos.realized_pnl for pos in self.positions.values()), _ZERO)

    def unrealized_pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Return unrealized P&L of all open positions at ``marks``."""
        total = _ZERO
        for instrument, pos in self.positions.items():
            if pos.quantity:
                total += pos.unrealized_pnl(_mark(marks, instrument))
        return total


def _mark(marks: Mapping[str, Decimal], instrument: str) -> Decimal:
    try:
        return marks[instrument]
    except KeyError:
        raise KeyError(f"no mark price for open position in {instrument}") from None


def fee_for(notional: Decimal, fee_rate: Decimal) -> Decimal:
    """Return the fee ``abs(notional) * fee_rate`` (unrounded).

    Parameters
    ----------
    notional
        Trade value ``quantity * price``.
    fee_rate
        Fraction, e.g. ``Decimal("0.001")`` for 10 bps.
    """
    return abs(notional) * fee_rate


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """One point of an equity curve."""

    ts: datetime
    equity: Decimal
    cash: Decimal
    realized: Decimal
    unrealized: Decimal


def max_drawdown(equities: Iterable[Decimal]) -> Decimal:
    """Return the largest fall from a running peak, as a fraction of that peak.

    Parameters
    ----------
    equities
        Equity values in time order.

    Returns
    -------
    Decimal
        E.g. ``Decimal("0.15")`` for 15 %; ``0`` for an empty or never-falling series.
        Points before the first positive peak are ignored (a fraction of a non-positive
        peak is meaningless).
    """
    peak: Decimal | None = None
    worst = _ZERO
    for value in equities:
        if peak is None or value > peak:
            peak = value
            continue
        if peak > 0:
            drawdown = (peak - value) / peak
            worst = max(worst, drawdown)
    return worst
