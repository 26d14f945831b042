"""Event-driven backtest over recorded bars, through the same code as live trading.

Per bar, in time order (bars of several instruments merged by ``ts``):

1. fills: the instrument's working orders are matched by ``PaperMatcher.on_bar`` at
   this bar's OPEN and booked into the ``Ledger``;
2. the strategy sees the bar (``Strategy.decide``) at its CLOSE, from data up to and
   including it;
3. ENTER_LONG while flat and EXIT_LONG while long become an ``OrderIntent``, checked
   by ``order_check`` (mode NORMAL, ``limits``); a denial is recorded, not raised.

Semantics (the command's ``--help`` and the README say the same):

- A signal at a bar's close is filled at the instrument's NEXT bar's open; a signal on
  the instrument's last bar produces no order.
- One position per instrument, long only. Each entry spends a fixed ``stake`` (quote
  currency): quantity = stake / fill price (``quantity_for_stake``: full ``Decimal``
  precision, rounded down only when the ``Instrument`` has a lot size). The fill price
  is only known at the next open, so the entry intent is checked at signal time with
  the quantity the stake buys at the decision price (the close), and the order handed
  to the matcher is sized with the same function at the next bar's open, just before
  matching: a "spend this much quote currency" market order. Exits sell the whole
  position and are handed to the matcher at signal time.
- Fees: ``fee_rate * notional`` on every fill (entry and exit), charged by the matcher.
  Trade P&L = exit notional - exit fee - (entry notional + entry fee).
- At one timestamp, entry fills are processed before exit fills (across instruments).
- A position still open after the last bar is closed at its instrument's last close
  (fee charged), with ``closed_at_end=True`` and exit time = that bar's open time.
- Equity = cash + positions marked at their last close, sampled once per timestamp
  after all its bars; max drawdown is the largest fall from a running peak as a
  fraction of the peak; P&L % is relative to ``capital``.

Hot path: with no signal and no working order the loop allocates nothing beyond what
``Decimal`` arithmetic needs (no signal objects, no lists, no matcher call).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, localcontext
from operator import attrgetter
from typing import TYPE_CHECKING

from apps.model.accounting import EquityPoint, Ledger, fee_for
from apps.model.intents import entry_intent, exit_intent
from apps.model.orders import Fill, OrderIntent, OrderState, OrderStatus
from apps.model.paper import NO_SLIPPAGE, PaperMatcher, SlippageModel
from apps.model.values import Instrument, Side
from apps.risk.domain.checks import RiskContext, RiskLimits, order_check
from apps.risk.domain.modes import SystemMode
from apps.strategies.domain.base import SignalAction
from apps.strategies.domain.sizing import quantity_for_stake

if TYPE_CHECKING:
    from apps.model.bars import Bar
    from apps.strategies.domain.base import Strategy

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
UNLIMITED = RiskLimits(
    max_order_notional=Decimal("Infinity"), max_position_notional=Decimal("Infinity")
)
DEFAULT_CAPITAL = Decimal(10000)
PROGRESS_EVERY = 8192  # bars between progress callbacks


@dataclass(frozen=True, slots=True)
class BacktestTrade:
    """One round trip. Times are the open times of the bars whose open filled the orders
    (for ``closed_at_end`` the exit time is the last bar's open time, price its close)."""

    instrument: str
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    quantity: Decimal
    entry_fee: Decimal
    exit_fee: Decimal
    pnl: Decimal
    closed_at_end: bool = False


@dataclass(frozen=True, slots=True)
class Denial:
    """An intent the pre-trade check refused."""

    instrument: str
    ts: datetime
    side: Side
    reason: str


@dataclass(frozen=True, slots=True)
class BacktestSummary:
    """Totals of a run. ``max_drawdown`` is a fraction (0.15 = 15 %)."""

    bars: int
    instruments: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    signals: int
    trades: int
    wins: int
    losses: int
    pnl: Decimal
    pnl_pct: Decimal
    fees: Decimal
    max_drawdown: Decimal
    capital: Decimal
    final_equity: Decimal
    closed_at_end: int
    denied: int


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Trades in exit order, the equity curve (if recorded), denials, every fill in
    booking order, and the summary."""

    trades: tuple[BacktestTrade, ...]
    equity_curve: tuple[EquityPoint, ...]
    summary: BacktestSummary
    denials: tuple[Denial, ...]
    fills: tuple[Fill, ...]


class _Slot:
    """Per-instrument state of a run."""

    __slots__ = (
        "basis",
        "decide",
        "entry_fill",
        "entry_intent",
        "exit_order",
        "instrument",
        "last_bar",
        "long",
        "name",
        "pending",
        "quantity",
        "signal_ts",
        "stake_scale",
        "strategy",
        "value",
    )

    def __init__(self, name: str, strategy: Strategy, instrument: Instrument | None) -> None:
        self.name = name
        self.strategy = strategy
        self.decide = strategy.decide
        # Strategies that size by conviction (ml) expose stake_multiplier(instrument).
        self.stake_scale = getattr(strategy, "stake_multiplier", None)
        self.instrument = instrument
        self.long = False  # holding a position
        self.pending = False  # an entry intent or exit order waits for the next bar
        self.quantity = _ZERO
        self.value = _ZERO  # quantity * last close while long
        self.basis = _ZERO  # quantity * entry price while long
        self.entry_intent: OrderIntent | None = None
        self.exit_order: OrderState | None = None
        self.entry_fill: Fill | None = None
        self.signal_ts: datetime | None = None
        self.last_bar: Bar | None = None


def merge_bars(sources: Mapping[str, Iterable[Bar]] | Iterable[Bar]) -> Iterable[Bar]:
    """Return one time-ordered stream; ties keep the mapping's order (stable merge)."""
    if isinstance(sources, Mapping):
        streams: list[Iterable[Bar]] = list(sources.values())
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=attrgetter("ts"))
    return sources


class _Run:
    """One backtest run: the hot loop plus the rarely taken order paths."""

    def __init__(
        self,
        strategy_factory: Callable[[], Strategy],
        *,
        stake: Decimal,
        fee_rate: Decimal,
        capital: Decimal,
        instruments: Mapping[str, Instrument],
        limits: RiskLimits,
        slippage: SlippageModel,
        record_equity: bool,
    ) -> None:
        self.strategy_factory = strategy_factory
        self.stake = stake
        self.fee_rate = fee_rate
        self.capital = capital
        self.instruments = instruments
        self.limits = limits
        self.slippage = slippage
        self.record_equity = record_equity
        self.matcher = PaperMatcher(fee_rate, slippage, instruments=instruments)
        self.ledger = Ledger(cash=capital)
        self.slots: dict[str, _Slot] = {}
        self.open_slots: list[_Slot] = []
        self.entries_waiting = 0  # slots with an entry intent waiting for their next bar
        self.trades: list[BacktestTrade] = []
        self.denials: list[Denial] = []
        self.fills: list[Fill] = []
        self.curve: list[EquityPoint] = []
        self.signals = 0
        self.order_seq = 0
        self.dirty = True  # cash or positions changed since the last equity sample
        self.peak: Decimal | None = None
        self.max_dd = _ZERO
        self.realized = _ZERO  # ledger realized P&L (before fees), for the curve
        self.first_ts: datetime | None = None

    # -- per-instrument state ------------------------------------------------------------

    def slot(self, name: str) -> _Slot:
        slot = self.slots.get(name)
        if slot is None:
            instrument = self.instruments.get(name)
            slot = self.slots[name] = _Slot(name, self.strategy_factory(), instrument)
        return slot

    # -- equity --------------------------------------------------------------------------

    def sample_equity(self, ts: datetime) -> None:
        """Mark to market after all bars of ``ts``; update peak and max drawdown."""
        cash = self.ledger.cash
        equity = cash
        for slot in self.open_slots:
            equity += slot.value
        peak = self.peak
        if peak is None or equity > peak:
            self.peak = equity
        elif peak > 0:
            drawdown = (peak - equity) / peak
            if drawdown > self.max_dd:
                self.max_dd = drawdown
        if self.record_equity:
            basis = _ZERO
            for slot in self.open_slots:
                basis += slot.basis
            self.curve.append(EquityPoint(ts, equity, cash, self.realized, equity - cash - basis))
        self.dirty = False

    # -- orders ----------------------------------------------------------------------------

    def next_order_id(self) -> str:
        self.order_seq += 1
        return f"bt-{self.order_seq}"

    def check(self, intent: OrderIntent, price: Decimal, position: Decimal, ts: datetime) -> bool:
        ctx = RiskContext(mode=SystemMode.NORMAL, last_price=price, position_quantity=position)
        decision = order_check(intent=intent, ctx=ctx, limits=self.limits)
        if not decision.approved:
            self.denials.append(Denial(intent.instrument, ts, intent.side, decision.reason))
        return decision.approved

    def on_signal(self, slot: _Slot, bar: Bar, action: SignalAction) -> None:
        """A non-HOLD action at ``bar``'s close: maybe create an (approved) intent."""
        self.signals += 1
        price = bar.close  # the decision price (a Signal's price), without building one
        if action is SignalAction.ENTER_LONG:
            if slot.long or slot.pending:
                return
            stake = (
                self.stake if slot.stake_scale is None else self.stake * slot.stake_scale(slot.name)
            )
            quantity = quantity_for_stake(stake, price, slot.instrument)
            if quantity <= 0:  # lot size larger than the stake buys
                reason = f"stake buys less than one lot at {bar.close}"
                self.denials.append(Denial(slot.name, bar.ts, Side.BUY, reason))
                return
            intent = entry_intent(
                instrument=slot.name,
                quantity=quantity,
                decision_price=price,
                reason=f"{slot.strategy.name} {action}",
            )
            if self.check(intent, price, _ZERO, bar.ts):
                slot.entry_intent = intent
                slot.signal_ts = bar.ts
                slot.pending = True
                self.entries_waiting += 1
        elif action is SignalAction.EXIT_LONG:
            if not slot.long or slot.pending:
                return
            intent = exit_intent(
                instrument=slot.name,
                position_quantity=slot.quantity,
                decision_price=price,
                reason=f"{slot.strategy.name} {action}",
            )
            if self.check(intent, price, slot.quantity, bar.ts):
                order = OrderState.from_intent(self.next_order_id(), intent)
                self.matcher.submit(order, bar.ts)
                slot.exit_order = order
                slot.signal_ts = bar.ts
                slot.pending = True

    def fill_pending(self, slot: _Slot, bar: Bar) -> None:
        """At ``bar``'s open: hand a waiting entry to the matcher, then book all fills."""
        intent = slot.entry_intent
        if intent is not None:
            slot.entry_intent = None
            self.entries_waiting -= 1
            price = self.slippage.apply(bar.open, Side.BUY)
            stake = self.stake
            if slot.stake_scale is not None:  # scaled at signal time: intent / decision price
                stake = intent.quantity * intent.decision_price  # type: ignore[operator]
            quantity = quantity_for_stake(stake, price, slot.instrument)
            order = OrderState.from_intent(self.next_order_id(), replace(intent, quantity=quantity))
            self.matcher.submit(order, slot.signal_ts)  # type: ignore[arg-type]
        for fill in self.matcher.on_bar(bar):
            self.book(slot, fill, closed_at_end=False)
        slot.pending = slot.exit_order is not None and slot.exit_order.status.is_open

    def book(self, slot: _Slot, fill: Fill, *, closed_at_end: bool) -> None:
        """Book one fill into the ledger and the slot; record the trade on an exit."""
        self.realized += self.ledger.apply_fill(fill)
        self.fills.append(fill)
        self.dirty = True
        if fill.side is Side.BUY:
            slot.long = True
            slot.quantity = fill.quantity
            slot.basis = fill.quantity * fill.price
            slot.value = slot.basis
            slot.entry_fill = fill
            self.open_slots.append(slot)
            return
        entry = slot.entry_fill
        assert entry is not None  # exits only exist while long
        exit_notional = fill.quantity * fill.price
        pnl = exit_notional - fill.fee - (entry.quantity * entry.price + entry.fee)
        self.trades.append(
            BacktestTrade(
                instrument=slot.name,
                entry_time=entry.ts,
                exit_time=fill.ts,
                entry_price=entry.price,
                exit_price=fill.price,
                quantity=entry.quantity,
                entry_fee=entry.fee,
                exit_fee=fill.fee,
                pnl=pnl,
                closed_at_end=closed_at_end,
            )
        )
        slot.long = False
        slot.quantity = slot.value = slot.basis = _ZERO
        slot.entry_fill = None
        slot.exit_order = None
        self.open_slots.remove(slot)

    def close_at_end(self, slot: _Slot) -> None:
        """Close an open position at its last bar's close (fee charged)."""
        bar = slot.last_bar
        assert bar is not None  # a long slot has seen bars
        if slot.exit_order is not None:  # exit signalled on the last bar: never filled
            self.matcher.cancel(slot.exit_order.client_order_id)
            slot.exit_order = None
        intent = exit_intent(
            instrument=slot.name,
            position_quantity=slot.quantity,
            decision_price=bar.close,
            reason="backtest: close at end of data",
        )
        order = OrderState.from_intent(self.next_order_id(), intent)
        order.apply(OrderStatus.SUBMITTED)
        order.apply(OrderStatus.ACCEPTED)
        fill = Fill(
            trade_id=f"end-{order.client_order_id}",
            client_order_id=order.client_order_id,
            instrument=slot.name,
            side=Side.SELL,
            quantity=slot.quantity,
            price=bar.close,
            fee=fee_for(slot.quantity * bar.close, self.fee_rate),
            ts=bar.ts,
        )
        order.apply_fill(fill)
        self.book(slot, fill, closed_at_end=True)

    # -- the loop ----------------------------------------------------------------------------

    def process(self, slot: _Slot, bar: Bar) -> None:
        """The full per-bar step (used for bars held back so entries fill before exits)."""
        if slot.pending:
            self.fill_pending(slot, bar)
        if slot.long:
            slot.value = slot.quantity * bar.close
        action = slot.decide(bar)
        if action is not SignalAction.HOLD:
            self.on_signal(slot, bar, action)
        slot.last_bar = bar

    def run(self, bars: Iterable[Bar], progress: Callable[[int], object] | None) -> int:
        hold = SignalAction.HOLD
        slots = self.slots
        held: list[tuple[_Slot, Bar]] = []
        cur_ts: datetime | None = None
        cur_name: str | None = None
        slot: _Slot | None = None
        n = 0
        every = PROGRESS_EVERY
        for bar in bars:
            n += 1
            name = bar.instrument
            if name is not cur_name:
                slot = slots.get(name) or self.slot(name)
                cur_name = name
            ts = bar.ts
            if ts != cur_ts:
                if held:
                    for held_slot, held_bar in held:
                        self.process(held_slot, held_bar)
                    held.clear()
                if cur_ts is None:
                    self.first_ts = ts
                elif self.open_slots or self.dirty:
                    self.sample_equity(cur_ts)
                cur_ts = ts
                if progress is not None and n >= every:
                    progress(n)
                    every = n + PROGRESS_EVERY
            if slot.pending:  # type: ignore[union-attr]
                if slot.exit_order is not None and self.entries_waiting:  # type: ignore[union-attr]
                    # Another instrument may fill an entry at this timestamp: exit after it.
                    held.append((slot, bar))  # type: ignore[arg-type]
                    continue
                self.fill_pending(slot, bar)  # type: ignore[arg-type]
            if slot.long:  # type: ignore[union-attr]
                slot.value = slot.quantity * bar.close  # type: ignore[union-attr]
            action = slot.decide(bar)  # type: ignore[union-attr]
            if action is not hold:
                self.on_signal(slot, bar, action)  # type: ignore[arg-type]
            slot.last_bar = bar  # type: ignore[union-attr]
        for held_slot, held_bar in held:
            self.process(held_slot, held_bar)
        if cur_ts is not None:
            if self.open_slots or self.dirty:
                self.sample_equity(cur_ts)
            for open_slot in list(self.open_slots):
                self.close_at_end(open_slot)
            if self.dirty:
                self.sample_equity(cur_ts)
        if progress is not None:
            progress(n)
        return n

    def result(self, bars: int, end: datetime | None) -> BacktestResult:
        trades = tuple(self.trades)
        pnl = sum((t.pnl for t in trades), _ZERO)
        fees = sum((t.entry_fee + t.exit_fee for t in trades), _ZERO)
        summary = BacktestSummary(
            bars=bars,
            instruments=tuple(self.slots),
            start=self.first_ts,
            end=end,
            signals=self.signals,
            trades=len(trades),
            wins=sum(1 for t in trades if t.pnl > 0),
            losses=sum(1 for t in trades if t.pnl < 0),
            pnl=pnl,
            pnl_pct=pnl / self.capital * _HUNDRED,
            fees=fees,
            max_drawdown=self.max_dd,
            capital=self.capital,
            final_equity=self.ledger.cash,
            closed_at_end=sum(1 for t in trades if t.closed_at_end),
            denied=len(self.denials),
        )
        return BacktestResult(
            trades, tuple(self.curve), summary, tuple(self.denials), tuple(self.fills)
        )


def run_backtest(
    bars: Mapping[str, Iterable[Bar]] | Iterable[Bar],
    strategy_factory: Callable[[], Strategy],
    *,
    stake: Decimal,
    fee_rate: Decimal,
    capital: Decimal = DEFAULT_CAPITAL,
    instruments: Mapping[str, Instrument] | None = None,
    limits: RiskLimits = UNLIMITED,
    slippage: SlippageModel = NO_SLIPPAGE,
    record_equity: bool = False,
    progress: Callable[[int], object] | None = None,
    precision: int = 28,
) -> BacktestResult:
    """Run a strategy over recorded bars (see the module docstring for the semantics).

    Parameters
    ----------
    bars
        One time-ordered stream of bars (e.g. a ``ReplayFeed`` with speed 0), or bars by
        instrument (merged here by ``ts``).
    strategy_factory
        Called once per instrument for a fresh strategy.
    stake
        Quote currency spent on each entry; must be positive.
    fee_rate
        Fee as a fraction of notional, charged on every fill; must be >= 0.
    capital
        Starting cash; the equity curve and P&L % are relative to it.
    instruments
        Optional specs by symbol (lot size rounds the entry quantity down).
    limits
        Pre-trade limits for ``order_check`` (default: unlimited).
    slippage
        Matcher slippage on market fills (default none).
    record_equity
        Keep one ``EquityPoint`` per timestamp with a change (costs memory on long runs).
    progress
        Called with the number of bars processed so far, every few thousand bars.
    precision
        ``decimal`` context precision used for all arithmetic of the run.

    Returns
    -------
    BacktestResult
        Trades, equity curve, denials and summary.

    Raises
    ------
    ValueError
        If ``stake`` or ``capital`` is not positive or ``fee_rate`` is negative.
    """
    if not stake > 0:
        raise ValueError(f"stake must be positive, got {stake}")
    if not fee_rate >= 0:
        raise ValueError(f"fee rate must be >= 0, got {fee_rate}")
    if not capital > 0:
        raise ValueError(f"capital must be positive, got {capital}")
    with localcontext() as ctx:
        ctx.prec = precision
        run = _Run(
            strategy_factory,
            stake=stake,
            fee_rate=fee_rate,
            capital=capital,
            instruments=instruments or {},
            limits=limits,
            slippage=slippage,
            record_equity=record_equity,
        )
        n = run.run(merge_bars(bars), progress)
        end = max(
            (s.last_bar.ts for s in run.slots.values() if s.last_bar is not None), default=None
        )
        return run.result(n, end)


def iter_trades_rows(trades: Iterable[BacktestTrade]) -> Iterator[tuple[str, ...]]:
    """Rows for trades.csv (see ``TRADES_COLUMNS``).

    Times are ISO-8601 UTC with ``Z``; numbers are plain decimal text (never exponent
    notation) at full ``Decimal`` precision.
    """
    for t in trades:
        yield (
            t.instrument,
            _iso(t.entry_time),
            _iso(t.exit_time),
            format(t.entry_price, "f"),
            format(t.exit_price, "f"),
            format(t.quantity, "f"),
            format(t.entry_fee, "f"),
            format(t.exit_fee, "f"),
            format(t.pnl, "f"),
        )


TRADES_COLUMNS: tuple[str, ...] = (
    "instrument",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "quantity",
    "entry_fee",
    "exit_fee",
    "pnl",
)


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")
