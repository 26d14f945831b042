"""The engine's main loop: feeds on their threads, everything else on this one.

Each feed (``apps.engine.feeds``) runs ``LiveFeed.run(stop)`` on its own thread and
pushes bars, rejections and state changes into one queue (``QueueSink``); this loop
takes them out in order and hands them to the ``Engine`` (all database work happens on
this thread). A bar's decision comes first (``Engine.decide``: its orders leave when it
commits); the bookkeeping (``Engine.settle``: feed status, marks, the equity rules) runs
once per drain, ``settle_delay`` after the last bar when no other bar is waiting (bars of
several series closing together are all decided first), and at least every
``settle_every`` seconds during a backlog. Between bars it:

- writes the heartbeat the healthcheck reads (``engine_heartbeat``: the loop is alive,
  which series it trades, when each last had a bar);
- watches the feeds' freshness (``apps.engine.watchdog.feeds_watch``: alert, then PAUSE);
- picks up plan changes (``plans_version``) without a restart: a new series restarts the
  feeds (each resumes after its last stored bar), a changed plan gets a fresh, warmed-up
  strategy.

``LiveLoop.stop()`` (SIGTERM) lets the bar in progress finish, then stops the feeds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.cache import cache
from django.utils import timezone

from apps.engine.feeds.base import FeedState, LiveFeed, Subscription, timeframe_delta
from apps.engine.runner import Engine, EnginePlan
from apps.marketdata.domain.csvfile import Rejection
from apps.model.bars import Bar

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "engine:heartbeat"
HEARTBEAT_TTL = 3600  # seconds the cache keeps it; freshness is judged from its content


class QueueSink:
    """A ``FeedSink`` that queues what feeds report for the engine's thread, and keeps the
    newest close of each instrument in ``market`` at once (the collar's market price while
    the engine works through a backlog)."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self.queue: queue.Queue[tuple[str, str, object, object]] = queue.Queue(maxsize)
        self.market: dict[str, tuple[Decimal, datetime]] = {}

    def on_bar(self, feed: str, timeframe: str, bar: Bar) -> None:
        closed_at = bar.ts + timeframe_delta(timeframe)
        newest = self.market.get(bar.instrument)
        if newest is None or closed_at > newest[1]:
            self.market[bar.instrument] = (bar.close, closed_at)
        self.queue.put(("bar", feed, timeframe, bar))

    def on_reject(self, feed: str, rejection: Rejection) -> None:
        self.queue.put(("reject", feed, rejection, None))

    def on_state(self, feed: str, state: FeedState, detail: str = "") -> None:
        self.queue.put(("state", feed, state, detail))


class PlansUnusable(Exception):
    """The plans changed to something the engine cannot run (it keeps the previous ones)."""

    def __init__(self, version: str, message: str) -> None:
        super().__init__(message)
        self.version = version


FeedsFactory = Callable[[Sequence[Subscription], QueueSink], list[LiveFeed]]
PlansSource = Callable[[], tuple[str, list[EnginePlan]]]  # (version, plans)


@dataclass
class _Running:
    feeds: list[LiveFeed]
    threads: list[threading.Thread]
    stop: threading.Event


def engine_heartbeat(engine: Engine, *, now: datetime | None = None) -> dict[str, object]:
    """Record that the loop is alive and what each series last did (the healthcheck reads it)."""
    now = now or timezone.now()
    beat = {
        "at": now.isoformat(),
        "bars_processed": engine.bars_processed,
        "decisions": engine.decisions,
        "last_bar_at": engine.last_bar_at.isoformat() if engine.last_bar_at else None,
        "series": [f"{i}:{tf}" for i, tf in engine.series()],
        "feeds": {name: str(state) for name, (state, _) in engine.feed_states.items()},
    }
    cache.set(HEARTBEAT_KEY, beat, HEARTBEAT_TTL)
    return beat


class LiveLoop:
    def __init__(
        self,
        engine: Engine,
        *,
        feeds_factory: FeedsFactory,
        plans_source: PlansSource | None = None,
        plans_version: str = "",
        watch: Callable[[], object] | None = None,
        housekeeping_every: float = 5.0,
        max_bars: int | None = None,
        settle_delay: float = 0.1,
        settle_every: float = 1.0,
    ) -> None:
        self.engine = engine
        self.feeds_factory = feeds_factory
        self.plans_source = plans_source
        self.plans_version = plans_version
        self.watch = watch
        self.housekeeping_every = housekeeping_every
        self.max_bars = max_bars
        self.settle_delay = settle_delay
        self.settle_every = settle_every
        self.sink = QueueSink()
        engine.market = self.sink.market
        self._running: _Running | None = None
        self._stop = threading.Event()
        self.feeds_ended = 0
        self._refused_version = ""

    def stop(self) -> None:
        """From a signal handler: finish the bar in progress, then return from ``run``."""
        self._stop.set()
        self.engine.stop()

    # --- feeds -------------------------------------------------------------------------

    def _subscriptions(self) -> list[Subscription]:
        return [
            Subscription(i, tf, self.engine.resume_after(i, tf)) for i, tf in self.engine.series()
        ]

    def feeds_start(self) -> None:
        subs = self._subscriptions()
        stop = threading.Event()
        feeds = self.feeds_factory(subs, self.sink) if subs else []
        threads = []
        for feed in feeds:
            thread = threading.Thread(
                target=self._feed_main, args=(feed, stop), name=f"feed-{feed.name}", daemon=True
            )
            thread.start()
            threads.append(thread)
        self._running = _Running(feeds, threads, stop)
        logger.info(
            "engine: %d feed(s) for %d series: %s",
            len(feeds),
            len(subs),
            ", ".join(f"{s.instrument} {s.timeframe}" for s in subs) or "none",
        )

    def _feed_main(self, feed: LiveFeed, stop: threading.Event) -> None:
        try:
            feed.run(stop)
        except Exception:  # noqa: BLE001 - a feed bug must not take the engine down silently
            logger.exception("feed %s crashed; the engine stops (its supervisor restarts it)", feed)
            self.sink.queue.put(("crash", feed.name, None, None))
        else:
            self.sink.queue.put(("ended", feed.name, None, None))

    def feeds_stop(self, timeout: float = 10.0) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        running.stop.set()
        for thread in running.threads:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("feed thread %s did not stop within %.0f s", thread.name, timeout)
        # Bars queued but not processed are dropped: the next feeds resume after the last
        # STORED bar, so they come again.
        while True:
            try:
                self.sink.queue.get_nowait()
            except queue.Empty:
                break

    # --- plans -------------------------------------------------------------------------

    def plans_reload(self) -> bool:
        """Pick up plan changes; True when they changed."""
        if self.plans_source is None:
            return False
        try:
            version, plans = self.plans_source()
        except PlansUnusable as exc:
            if exc.version != self._refused_version:
                self._refused_version = exc.version
                logger.error(
                    "engine: the trading plans changed but cannot be run (%s): still trading "
                    "the previous plans; fix the plan in the admin or panel",
                    exc,
                )
            return False
        if version == self.plans_version:
            return False
        before = self.engine.series()
        self.engine.plans_set(plans)
        self.plans_version = version
        logger.info("engine: plans changed (%s): %d active", version, len(plans))
        if self.engine.series() != before:
            self.feeds_stop()
            self.feeds_start()
        return True

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped, or every feed ended (a replay without loop); returns bars."""
        engine = self.engine
        self.feeds_start()
        processed = 0
        next_housekeeping = 0.0
        settle_at: float | None = None  # when the decided bars are settled (monotonic)
        settle_by: float | None = None  # settled by then even if bars keep coming
        crashed = False
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if settle_at is not None and (
                    now >= settle_at or (settle_by is not None and now >= settle_by)
                ):
                    engine.settle()
                    settle_at = settle_by = None
                if now >= next_housekeeping:
                    next_housekeeping = now + self.housekeeping_every
                    self._housekeeping()
                timeout = 0.2 if settle_at is None else max(0.0, min(0.2, settle_at - now))
                try:
                    kind, feed, a, b = self.sink.queue.get(timeout=timeout)
                except queue.Empty:
                    continue
                if kind == "bar":
                    assert isinstance(a, str)
                    assert isinstance(b, Bar)
                    if engine.decide(feed, a, b):
                        processed += 1
                        now = time.monotonic()
                        settle_at = now + self.settle_delay
                        settle_by = settle_by or now + self.settle_every
                        if self.max_bars is not None and processed >= self.max_bars:
                            break
                elif kind == "reject":
                    assert isinstance(a, Rejection)
                    engine.on_reject(feed, a)
                elif kind == "state":
                    engine.on_state(feed, FeedState(str(a)), str(b or ""))
                elif kind == "crash":
                    crashed = True
                    break
                elif kind == "ended":
                    self.feeds_ended += 1
                    running = self._running
                    if running is not None and self.feeds_ended >= len(running.feeds):
                        break
        finally:
            self.feeds_stop()
            if engine.unsettled:
                engine.settle()
            engine.rejections_flush()
            engine_heartbeat(engine)
        if crashed:
            raise RuntimeError("a market-data feed crashed (see the log above)")
        return processed

    def _housekeeping(self) -> None:
        engine_heartbeat(self.engine)
        self.engine.rejections_flush()
        if self.watch is not None:
            try:
                self.watch()
            except Exception:  # noqa: BLE001 - the watchdog also runs from beat
                logger.exception("feed watchdog failed in the engine loop")
        self.plans_reload()
