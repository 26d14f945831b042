"""The live engine: bar -> store -> paper fills -> marks -> strategy -> decision.

The same strategy, pre-trade checks, order state machine, matcher and
accounting as the backtest (apps.backtest.domain.backtest); here each step is
persisted and pushed to the panel, and orders leave through the Celery
``execution`` queue.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.accounts.models import Account
from apps.marketdata.domain.csvfile import Rejection
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


class Engine:
    """Drives one account from a stream of bars (one strategy instance per instrument)."""

    def __init__(
        self,
        *,
        account: Account,
        strategy_factory: Callable[[], Strategy],
        strategy_name: str,
        strategy_params: dict[str, Any],
        stake: Decimal,
        feed_name: str = "replay",
        timeframe: str = "1m",
        snapshot_every: timedelta = timedelta(minutes=1),
    ) -> None:
        self.account = account
        self.strategy_factory = strategy_factory
        self.strategy_name = strategy_name
        self.strategy_params = strategy_params
        self.stake = stake
        self.feed_name = feed_name
        self.timeframe = timeframe
        self.snapshot_every = snapshot_every
        self.venue = PaperVenue()
        self._strategies: dict[str, Strategy] = {}
        self._instrument_ids: dict[str, int] = {}
        self._prices: dict[str, Decimal] = {}
        self._last_snapshot: datetime | None = None
        self._rejected: Counter[str] = Counter()
        self._stopping = False
        # Instruments with OBSERVATION trades waiting for the next bar's open.
        self._hypothetical_pending: set[str] = set(
            HypotheticalTrade.objects.filter(fill_ts__isnull=True).values_list(
                "instrument__symbol", flat=True
            )
        )

    def on_reject(self, rejection: Rejection) -> None:
        logger.warning(
            "rejected market data %s line %s: %s (%s)",
            rejection.source,
            rejection.line,
            rejection.reason,
            rejection.raw[:120],
        )
        self._rejected[rejection.reason] += 1

    def _strategy(self, instrument: str) -> Strategy:
        strategy = self._strategies.get(instrument)
        if strategy is None:
            strategy = self._strategies[instrument] = self.strategy_factory()
        return strategy

    def warm_up(self, bar: Bar) -> None:
        """Feed a bar that was already processed before a restart to the strategy only."""
        self._strategy(bar.instrument).on_bar(bar)
        self._prices[bar.instrument] = bar.close

    def on_bar(self, bar: Bar) -> None:
        """One bar, in the order that keeps decision latency low and positions right:

        1. working orders fill against this bar's open (they were decided on earlier bars),
        2. the strategy decides at this bar's close and any order goes out at once,
        3. then the bookkeeping: the bar is stored, the feed marked fresh, equity marked.
        """
        instrument_id = self._instrument_ids.get(bar.instrument)
        if instrument_id is None:
            instrument_id = instrument_get_or_create(symbol=bar.instrument).pk
            self._instrument_ids[bar.instrument] = instrument_id
        for fill in self.venue.match(bar):
            fill_apply(fill=fill)
        if bar.instrument in self._hypothetical_pending:
            self._hypothetical_pending.discard(bar.instrument)
            hypothetical_fills_apply(bar=bar)

        signal = self._strategy(bar.instrument).on_bar(bar)
        if signal.action is not SignalAction.HOLD:
            outcome = decision_make(
                account=self.account,
                signal=signal,
                strategy=self.strategy_name,
                strategy_params=self.strategy_params,
                stake=self.stake,
            )
            if outcome.decision.action in ("would_buy", "would_sell"):
                self._hypothetical_pending.add(bar.instrument)

        bar_store(bar=bar, timeframe=self.timeframe, instrument_id=instrument_id)
        feed_status_update(
            feed=self.feed_name,
            last_bar_ts=bar.ts,
            accepted=1,
            rejected=dict(self._rejected) or None,
            now=timezone.now(),
        )
        self._rejected.clear()
        self._prices[bar.instrument] = bar.close
        take = self._last_snapshot is None or bar.ts - self._last_snapshot >= self.snapshot_every
        if take:
            self._last_snapshot = bar.ts
        mark_to_market(account=self.account, prices=self._prices, ts=bar.ts, snapshot=take)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Ask ``run`` to return after the bar in progress (from a signal handler)."""
        self._stopping = True

    def run(self, bars: Iterable[Bar]) -> int:
        count = 0
        for bar in bars:
            if self._stopping:
                break
            self.on_bar(bar)
            count += 1
        return count
