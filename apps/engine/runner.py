"""The engine: bar -> paper fills -> strategies of every plan -> decisions -> stored bar; then marks.

Each bar has a critical path (``Engine.decide``: paper fills, decisions, the stored bar, one
commit, orders out) and bookkeeping (``Engine.settle``: feed status, marks to market, the
equity rules), which the live loop runs once no bar is waiting, so that an order never waits
for the bookkeeping of the bars before it.

The same strategy, pre-trade checks, order state machine, matcher and accounting as the
backtest (apps.backtest.domain.backtest); here each step is persisted and pushed to the
panel, and orders leave through the Celery ``execution`` queue.

What the engine trades is a list of plans (``EnginePlan``: account, instrument,
timeframe, strategy, params, stake), normally the active ``TradingPlan`` rows
(``apps.engine.selectors.plans_active``). A plan with ``instrument=None`` trades every
instrument of its timeframe that arrives (tests and benches).

Restart is seamless because the database is the engine's memory:

- a series (instrument, timeframe) resumes after its last STORED bar: a bar at or before
  it is never processed again;
- a bar's decisions and the bar itself commit in ONE transaction (orders leave on
  commit), so a crash either keeps both or neither: no bar is half-processed and no
  decision is made twice;
- a strategy is created at the first bar of its series after a (re)start and warmed up on
  the stored bars before it, from a point fixed for the plan (``warm_from``: its creation
  less ``ENGINE_WARMUP_BARS`` bars), so its state equals an uninterrupted run's (the ML
  strategy's feature window included; the warm-up records nothing).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.engine.feeds.base import FeedState, timeframe_delta
from apps.marketdata.domain.csvfile import Rejection
from apps.marketdata.models import Bar as BarRow
from apps.marketdata.services import bar_store, feed_status_update, instrument_get_or_create
from apps.model.bars import Bar
from apps.risk.models import HypotheticalTrade
from apps.strategies.domain.base import SignalAction, Strategy
from apps.trading.services.decisions import decision_make
from apps.trading.services.fills import fill_apply
from apps.trading.services.marking import mark_to_market
from apps.trading.services.observation import hypothetical_fills_apply
from apps.trading.venues.paper import PaperVenue

logger = logging.getLogger(__name__)

WARM_UP_CHUNK = 5000  # stored bars read per query while warming up


@dataclass(frozen=True)
class EnginePlan:
    """One thing to trade: ``strategy_factory()`` decides for ``account`` on one series."""

    key: str
    account: Account
    instrument: str | None  # None: every instrument of ``timeframe`` (tests, benches)
    timeframe: str
    strategy_name: str
    strategy_params: dict[str, Any]
    stake: Decimal
    strategy_factory: Callable[[], Strategy] = field(compare=False)
    warm_from: datetime | None = None  # None: warm up on every stored bar of the series
    venue: str = "paper"  # where its bars come from live (kraken, ibkr); paper = the replay

    def trades(self, instrument: str, timeframe: str) -> bool:
        return self.timeframe == timeframe and self.instrument in (None, instrument)


def series_name(feed: str, instrument: str, timeframe: str) -> str:
    """The FeedStatus name of one series: freshness is per feed AND instrument."""
    return f"{feed}:{instrument}:{timeframe}"


class Engine:
    """Drives every plan from a stream of closed bars (``on_bar``), on one thread."""

    def __init__(
        self,
        *,
        plans: Sequence[EnginePlan],
        snapshot_every: timedelta = timedelta(minutes=1),
        default_feed: str = "replay",
    ) -> None:
        self.plans: tuple[EnginePlan, ...] = ()
        self.snapshot_every = snapshot_every
        self.default_feed = default_feed
        # The timeframe of on_bar(bar) and run(bars) without one: the plans' if they share one.
        timeframes = {p.timeframe for p in plans}
        self.default_timeframe = timeframes.pop() if len(timeframes) == 1 else "1m"
        self.venue = PaperVenue()
        self._strategies: dict[tuple[str, str], Strategy] = {}  # (plan key, instrument)
        self._resume: dict[tuple[str, str], datetime | None] = {}  # series -> last stored ts
        self._instrument_ids: dict[str, int] = {}
        self._prices: dict[str, Decimal] = {}
        # instrument -> (newest close, its close time) as the feeds deliver it (written by
        # the feed threads through the sink; read here).
        self.market: dict[str, tuple[Decimal, datetime]] = {}
        self._last_snapshot: dict[int, datetime] = {}
        self._rejected: dict[str, Counter[str]] = defaultdict(Counter)
        # Decided but not yet settled: series name -> (bars, newest bar ts); account id ->
        # (account, newest bar ts).
        self._unsettled_series: dict[str, tuple[int, datetime]] = {}
        self._unsettled_accounts: dict[int, tuple[Account, datetime]] = {}
        self._stopping = False
        self.bars_processed = 0
        self.bars_skipped = 0
        self.decisions = 0
        self.last_bar_at: datetime | None = None  # wall time of the last processed bar
        self.feed_states: dict[str, tuple[FeedState, str]] = {}
        # Instruments with OBSERVATION trades waiting for the next bar's open.
        self._hypothetical_pending: set[str] = set(
            HypotheticalTrade.objects.filter(fill_ts__isnull=True).values_list(
                "instrument__symbol", flat=True
            )
        )
        self.plans_set(plans)

    @classmethod
    def for_account(
        cls,
        *,
        account: Account,
        strategy_factory: Callable[[], Strategy],
        strategy_name: str,
        strategy_params: dict[str, Any],
        stake: Decimal,
        timeframe: str = "1m",
        snapshot_every: timedelta = timedelta(minutes=1),
    ) -> Engine:
        """One strategy on every instrument that arrives, for one account (tests, benches)."""
        plan = EnginePlan(
            key=f"account-{account.pk}",
            account=account,
            instrument=None,
            timeframe=timeframe,
            strategy_name=strategy_name,
            strategy_params=strategy_params,
            stake=stake,
            strategy_factory=strategy_factory,
        )
        return cls(plans=[plan], snapshot_every=snapshot_every)

    # --- plans --------------------------------------------------------------------------

    def plans_set(self, plans: Sequence[EnginePlan]) -> None:
        """Trade ``plans`` from the next bar on; a changed or new plan starts a new strategy
        (warmed up at its first bar), an unchanged plan keeps its state."""
        keep = {p.key for p in plans if p in self.plans}
        for key, instrument in list(self._strategies):
            if key not in keep:
                del self._strategies[(key, instrument)]
        self.plans = tuple(plans)

    def series(self) -> list[tuple[str, str]]:
        """The (instrument, timeframe) series the plans trade (named instruments only)."""
        return sorted({(p.instrument, p.timeframe) for p in self.plans if p.instrument})

    def resume_after(self, instrument: str, timeframe: str) -> datetime | None:
        """The last stored bar of a series: the engine continues strictly after it."""
        key = (instrument, timeframe)
        if key not in self._resume:
            self._resume[key] = (
                BarRow.objects.filter(instrument__symbol=instrument, timeframe=timeframe)
                .order_by("-ts")
                .values_list("ts", flat=True)
                .first()
            )
        return self._resume[key]

    # --- feed sink (called on the engine's thread) ------------------------------------------

    def on_reject(self, feed: str, rejection: Rejection) -> None:
        logger.warning(
            "rejected market data from %s (%s line %s): %s (%s)",
            feed,
            rejection.source,
            rejection.line,
            rejection.reason,
            rejection.raw[:120],
        )
        self._rejected[rejection.source if ":" in rejection.source else feed][rejection.reason] += 1

    def on_state(self, feed: str, state: FeedState, detail: str = "") -> None:
        self.feed_states[feed] = (state, detail)

    def _strategy(self, plan: EnginePlan, bar: Bar, timeframe: str) -> Strategy:
        key = (plan.key, bar.instrument)
        strategy = self._strategies.get(key)
        if strategy is None:
            strategy = self._strategies[key] = plan.strategy_factory()
            warmed = self._warm_up(strategy, plan, bar.instrument, timeframe, before=bar.ts)
            if warmed:
                logger.info(
                    "plan %s: %s on %s %s warmed up on %d stored bars",
                    plan.key,
                    plan.strategy_name,
                    bar.instrument,
                    timeframe,
                    warmed,
                )
        return strategy

    @staticmethod
    def _warm_up(
        strategy: Strategy, plan: EnginePlan, instrument: str, timeframe: str, *, before: datetime
    ) -> int:
        """Feed the stored bars of the series before ``before`` to the strategy only."""
        # warm() when the strategy has one (records nothing), else its decision code.
        warm = (
            getattr(strategy, "warm", None) or getattr(strategy, "decide", None) or strategy.on_bar
        )
        rows = BarRow.objects.filter(
            instrument__symbol=instrument, timeframe=timeframe, ts__lt=before
        )
        if plan.warm_from is not None:
            rows = rows.filter(ts__gte=plan.warm_from)
        count = 0
        columns = ("ts", "open", "high", "low", "close", "volume")
        for ts, o, h, lo, c, v in (
            rows.order_by("ts").values_list(*columns).iterator(chunk_size=WARM_UP_CHUNK)
        ):
            warm(Bar(instrument, ts, o, h, lo, c, v))
            count += 1
        return count

    def _instrument_id(self, symbol: str) -> int:
        instrument_id = self._instrument_ids.get(symbol)
        if instrument_id is None:
            instrument_id = instrument_get_or_create(symbol=symbol).pk
            self._instrument_ids[symbol] = instrument_id
        return instrument_id

    def on_bar(self, feed: str | Bar, timeframe: str = "", bar: Bar | None = None) -> bool:
        """One closed bar, decided and settled (``on_bar(bar)`` or the sink form
        ``on_bar(feed, timeframe, bar)``): ``decide`` then ``settle``, for replays and tests.

        Returns False for a bar at or before the series' last stored bar (not processed).
        """
        if bar is None:
            assert isinstance(feed, Bar)
            bar, feed, timeframe = feed, self.default_feed, self.default_timeframe
        assert isinstance(feed, str)
        if not self.decide(feed, timeframe, bar):
            return False
        self.settle()
        return True

    def decide(self, feed: str, timeframe: str, bar: Bar) -> bool:
        """The bar's critical path: what must happen before its orders leave.

        1. working paper orders fill against this bar's open (decided on earlier bars);
        2. in ONE transaction, every plan on the series decides at this bar's close and
           the bar is stored; orders leave when it commits.

        The bookkeeping (the feed marked fresh, the accounts marked to market and watched by
        the equity rules) is left to ``settle``, which the live loop runs once the queue of
        bars is empty, so that it never delays the next bar's decision nor competes with an
        order on its way out. Returns False for a bar at or before the series' last stored
        bar (not processed).
        """
        resume = self.resume_after(bar.instrument, timeframe)
        if resume is not None and bar.ts <= resume:
            self.bars_skipped += 1
            return False
        instrument_id = self._instrument_id(bar.instrument)
        for fill in self.venue.match(bar):
            fill_apply(fill=fill)
        if bar.instrument in self._hypothetical_pending:
            self._hypothetical_pending.discard(bar.instrument)
            hypothetical_fills_apply(bar=bar)

        closed_at = bar.ts + timeframe_delta(timeframe)
        # The collar's market price: the newest price the feed has delivered when it is newer
        # than this bar (catching up after a restart or a reconnect); otherwise decision_make
        # takes the last stored close before this bar. Never this bar's own close, which is
        # the signal's price.
        newest = self.market.get(bar.instrument)
        reference: dict[str, Any] = (
            {"reference_price": newest[0], "reference_ts": newest[1]}
            if newest is not None and newest[1] > closed_at
            else {}
        )
        accounts: list[Account] = []
        with transaction.atomic():
            for plan in self.plans:
                if not plan.trades(bar.instrument, timeframe):
                    continue
                accounts.append(plan.account)
                signal = self._strategy(plan, bar, timeframe).on_bar(bar)
                if signal.action is SignalAction.HOLD:
                    continue
                outcome = decision_make(
                    account=plan.account,
                    signal=signal,
                    strategy=plan.strategy_name,
                    strategy_params=plan.strategy_params,
                    stake=plan.stake,
                    timeframe=timeframe,
                    savepoint=False,  # the bar's transaction is the unit: no savepoint
                    **reference,
                )
                self.decisions += 1
                if outcome.decision.action in ("would_buy", "would_sell"):
                    self._hypothetical_pending.add(bar.instrument)
            bar_store(bar=bar, timeframe=timeframe, instrument_id=instrument_id)
        self._resume[(bar.instrument, timeframe)] = bar.ts

        # What settle() has to do for this bar.
        name = series_name(feed, bar.instrument, timeframe)
        count, _ = self._unsettled_series.get(name, (0, bar.ts))
        self._unsettled_series[name] = (count + 1, bar.ts)
        self._prices[bar.instrument] = bar.close
        for account in accounts:
            self._unsettled_accounts[account.pk] = (account, bar.ts)
        self.bars_processed += 1
        self.last_bar_at = timezone.now()
        return True

    @property
    def unsettled(self) -> bool:
        """Whether bars were decided since the last ``settle``."""
        return bool(self._unsettled_series or self._unsettled_accounts)

    def settle(self) -> None:
        """The bookkeeping of the bars decided since the last call, once per series and
        account however many bars that was: each series' feed status (bars accepted, last
        bar, rejections), then each account marked to market at the newest prices (an equity
        snapshot at most every ``snapshot_every`` of bar time) and seen by the equity rules.
        """
        series, self._unsettled_series = self._unsettled_series, {}
        accounts, self._unsettled_accounts = self._unsettled_accounts, {}
        now = timezone.now()
        for name, (count, last_ts) in series.items():
            rejected = self._rejected.pop(name, None)
            feed_status_update(
                feed=name,
                last_bar_ts=last_ts,
                accepted=count,
                rejected=dict(rejected) if rejected else None,
                now=now,
            )
        for account, ts in accounts.values():
            last = self._last_snapshot.get(account.pk)
            take = last is None or ts - last >= self.snapshot_every
            if take:
                self._last_snapshot[account.pk] = ts
            mark_to_market(account=account, prices=self._prices, ts=ts, snapshot=take)

    def rejections_flush(self) -> None:
        """Record rejections that no good bar of their series has carried in yet."""
        for name, counts in list(self._rejected.items()):
            feed_status_update(feed=name, last_bar_ts=None, rejected=dict(counts))
        self._rejected.clear()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Ask ``run`` (or the live loop) to return after the bar in progress."""
        self._stopping = True

    def run(
        self, bars: Iterable[Bar], *, timeframe: str | None = None, feed: str | None = None
    ) -> int:
        """Process ``bars`` in order on this thread (replays, tests), each decided and
        settled; returns bars processed."""
        feed = feed or self.default_feed
        timeframe = timeframe or self.default_timeframe
        count = 0
        for bar in bars:
            if self._stopping:
                break
            if self.on_bar(feed, timeframe, bar):
                count += 1
        self.rejections_flush()
        return count
