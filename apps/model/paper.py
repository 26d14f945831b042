"""Paper broker matching: fills working orders against OHLCV bars.

Used both by the live paper venue and by the backtest, so the two produce the same fills.
Rules (see docs/domain-contract.md):

- an order submitted at ``now`` is only eligible on bars with ``bar.ts > now``: a
  signal taken at the close of bar N fills on bar N+1 at the earliest (no look-ahead);
- MARKET orders fill completely at the bar's open, plus slippage;
- a buy LIMIT fills when ``bar.low <= limit`` at ``min(open, limit)`` (sells symmetric
  with ``bar.high`` and ``max``), no slippage, at most ``volume_participation * volume``
  per bar shared by the instrument's orders in submit order; the rest keeps working;
- fee = ``fee_rate * quantity * price``; trade ids ``paper-{client_order_id}-{bar epoch seconds}`` (an order
  fills at most once per bar, so the id is the same whoever rebuilds the book and
  replays the bar: the live paper venue rebuilds it from the database each bar).

The matcher owns the submitted ``OrderState`` objects while they work: it moves them to
ACCEPTED on submit, applies every fill it returns to them, and CANCELED on cancel. Book
the returned fills into a ``Ledger``; do not apply them to the same ``OrderState`` again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from apps.model.errors import InvalidOrderError, OrderStateError
from apps.model.orders import Fill, OrderState, OrderStatus
from apps.model.time import ensure_utc
from apps.model.values import Instrument, OrderType, Side

if TYPE_CHECKING:
    from apps.model.bars import Bar

_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class SlippageModel:
    """Fixed slippage in basis points: buys pay up, sells receive less."""

    bps: Decimal = _ZERO

    def apply(self, price: Decimal, side: Side) -> Decimal:
        """Return the price after slippage.

        Parameters
        ----------
        price
            Reference price (e.g. the bar open).
        side
            BUY pays ``price * (1 + bps/10000)``; SELL gets ``price * (1 - bps/10000)``.
        """
        if not self.bps:
            return price
        if side is Side.BUY:
            return price * (_ONE + self.bps / _BPS)
        return price * (_ONE - self.bps / _BPS)


NO_SLIPPAGE = SlippageModel()


def paper_fee(quantity: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
    """The paper fee of a fill: ``fee_rate * quantity * price`` (in this order: Decimal
    products round at each step, and every paper fill must round the same way)."""
    return fee_rate * quantity * price


def paper_market_fill(
    reference: Decimal, side: Side, quantity: Decimal, *, slippage: SlippageModel, fee_rate: Decimal
) -> tuple[Decimal, Decimal]:
    """The price and fee of a paper market fill at ``reference`` (a bar's open, or the last
    mark for an emergency close): slippage against the order, the fee on the slipped price.
    The one rule for the matcher, the kill switch's close at the mark and OBSERVATION."""
    price = slippage.apply(reference, side)
    return price, paper_fee(quantity, price, fee_rate)


class _Working:
    """An order on the matcher's book, with its eligibility time and fill counter."""

    __slots__ = ("fills", "not_before", "order")

    def __init__(self, order: OrderState, not_before: datetime) -> None:
        self.order = order
        self.not_before = not_before
        self.fills = 0


class PaperMatcher:
    """Match working orders against bars (see the module docstring for the rules).

    Parameters
    ----------
    fee_rate
        Fee as a fraction of fill notional.
    slippage
        Applied to MARKET fills only (a limit price is a guarantee).
    volume_participation
        Fraction of each bar's volume that LIMIT orders may take in total.
    instruments
        Optional instrument specs by symbol; when given, volume-capped partial fill
        quantities are rounded down to the lot size (and skipped when that gives zero).
    """

    __slots__ = ("_books", "_by_id", "fee_rate", "instruments", "slippage", "volume_participation")

    def __init__(
        self,
        fee_rate: Decimal,
        slippage: SlippageModel = NO_SLIPPAGE,
        volume_participation: Decimal = Decimal("0.1"),
        *,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        if fee_rate < 0:
            raise ValueError(f"fee_rate must be >= 0, got {fee_rate}")
        if not 0 < volume_participation <= 1:
            raise ValueError(f"volume_participation must be in (0, 1], got {volume_participation}")
        self.fee_rate = fee_rate
        self.slippage = slippage
        self.volume_participation = volume_participation
        self.instruments: Mapping[str, Instrument] = instruments or {}
        # instrument -> client_order_id -> working order; insertion order = priority.
        # An instrument with no working orders has no key, so on_bar is one dict miss.
        self._books: dict[str, dict[str, _Working]] = {}
        self._by_id: dict[str, _Working] = {}

    def submit(self, order: OrderState, now: datetime) -> None:
        """Put ``order`` on the book; it becomes ACCEPTED.

        Parameters
        ----------
        order
            An INITIALIZED (or SUBMITTED) order with nothing filled.
        now
            Submission time (aware); the order only fills on bars with ``ts > now``. For a
            signal taken at the close of a bar, pass that bar's ``ts`` (its open time), not
            its close time, which equals the next bar's ``ts`` and would skip that bar.

        Raises
        ------
        OrderStateError
            If the order is already on the book or its status cannot be accepted.
        InvalidOrderError
            If the quantity is not positive or the limit price does not match the type.
        """
        not_before = ensure_utc(now)
        coid = order.client_order_id
        if coid in self._by_id:
            raise OrderStateError(f"order {coid} is already working", client_order_id=coid)
        if order.quantity <= 0 or order.remaining <= 0:
            raise InvalidOrderError(
                f"order {coid} has nothing to fill (quantity {order.quantity}, "
                f"filled {order.filled_quantity})",
                client_order_id=coid,
            )
        if (order.order_type is OrderType.LIMIT) != (order.limit_price is not None) or (
            order.limit_price is not None and order.limit_price <= 0
        ):
            raise InvalidOrderError(
                f"order {coid}: {order.order_type} order with limit price {order.limit_price}",
                client_order_id=coid,
            )
        if order.status is OrderStatus.INITIALIZED:
            order.apply(OrderStatus.SUBMITTED)
        order.apply(OrderStatus.ACCEPTED)  # raises unless SUBMITTED
        working = _Working(order, not_before)
        self._by_id[coid] = working
        book = self._books.get(order.instrument)
        if book is None:
            book = self._books[order.instrument] = {}
        book[coid] = working

    def cancel(self, client_order_id: str) -> bool:
        """Cancel a working order.

        Parameters
        ----------
        client_order_id
            The order to cancel.

        Returns
        -------
        bool
            True if it was working and is now CANCELED; False if unknown or already done.
        """
        working = self._by_id.get(client_order_id)
        if working is None:
            return False
        working.order.apply(OrderStatus.CANCELED)
        del self._by_id[client_order_id]
        book = self._books[working.order.instrument]
        del book[client_order_id]
        if not book:
            del self._books[working.order.instrument]
        return True

    def open_orders(self, instrument: str | None = None) -> list[OrderState]:
        """Return the working orders in submit order, optionally for one instrument."""
        if instrument is None:
            return [w.order for w in self._by_id.values()]
        book = self._books.get(instrument)
        return [w.order for w in book.values()] if book else []

    def on_bar(self, bar: Bar) -> list[Fill]:
        """Match the working orders of ``bar.instrument`` against ``bar``.

        Parameters
        ----------
        bar
            The new bar (``ts`` is its open time).

        Returns
        -------
        list[Fill]
            Fills in priority order, already applied to their ``OrderState``.
        """
        book = self._books.get(bar.instrument)
        if not book:
            return []
        fills: list[Fill] = []
        ts = bar.ts
        budget: Decimal | None = None  # computed on the first fill only
        working: _Working | None  # the loop below, then a lookup that may miss
        for working in book.values():
            if ts <= working.not_before:
                continue
            order = working.order
            if order.order_type is OrderType.MARKET:
                price = self.slippage.apply(bar.open, order.side)
                quantity = order.remaining
                if budget is None:
                    budget = self.volume_participation * bar.volume
            else:
                limit = order.limit_price
                if limit is None:  # pragma: no cover - submit refuses such orders
                    continue
                if order.side is Side.BUY:
                    if bar.low > limit:
                        continue
                    price = min(limit, bar.open)
                else:
                    if bar.high < limit:
                        continue
                    price = max(limit, bar.open)
                if budget is None:
                    budget = self.volume_participation * bar.volume
                quantity = order.remaining
                if budget < quantity:
                    instrument = self.instruments.get(order.instrument)
                    quantity = instrument.round_quantity(budget) if instrument else budget
                    if quantity <= 0:
                        continue
            # Market orders are not capped but still use up the bar's volume budget.
            budget = budget - quantity if budget > quantity else _ZERO
            working.fills += 1
            fill = Fill(
                trade_id=f"paper-{order.client_order_id}-{int(ts.timestamp())}",
                client_order_id=order.client_order_id,
                instrument=order.instrument,
                side=order.side,
                quantity=quantity,
                price=price,
                fee=paper_fee(quantity, price, self.fee_rate),
                ts=ts,
            )
            order.apply_fill(fill)
            fills.append(fill)
        if fills:
            # Drop completed orders after the loop (the book is not mutated while iterated).
            for fill in fills:
                working = book.get(fill.client_order_id)
                if working is not None and working.order.status is OrderStatus.FILLED:
                    del book[fill.client_order_id]
                    del self._by_id[fill.client_order_id]
            if not book:
                del self._books[bar.instrument]
        return fills
