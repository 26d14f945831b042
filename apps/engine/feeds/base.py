"""The live feed interface shared by the Kraken and IBKR feeds.

A live feed runs in its own thread (``LiveFeed.run(stop)``) and pushes what it sees
to a ``FeedSink`` (the engine), which does all database work on its own thread:

- ``on_bar``: a CLOSED bar of one subscription, validated, strictly after the last one
  emitted for that series (backfill overlap is dropped silently, never re-emitted);
- ``on_reject``: a bar or message that failed validation or could not be parsed
  (logged and counted by the sink, never traded on);
- ``on_state``: the connection state (a reconnect backfills from the last emitted bar).

``SeriesGate`` is the part every feed shares: per series, drop what was already
emitted, validate the rest (``apps.marketdata.domain.validation.SeriesValidator``),
and emit in order. A feed never raises out of ``run`` for bad data or a lost
connection: it reports and reconnects until ``stop`` is set.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from apps.marketdata.domain.csvfile import Rejection
from apps.marketdata.domain.validation import SeriesValidator, ValidationConfig
from apps.model.bars import Bar

logger = logging.getLogger(__name__)

# The timeframes a plan may name (venue support is checked by each feed).
TIMEFRAMES: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}
_TIMEFRAME_RE = re.compile(r"^\d+[mhd]$")


def timeframe_delta(timeframe: str) -> timedelta:
    """The length of a timeframe label; ValueError naming the known ones otherwise."""
    try:
        return TIMEFRAMES[timeframe]
    except KeyError:
        raise ValueError(
            f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}"
        ) from None


def utcnow() -> datetime:
    return datetime.now(UTC)


def scaled_clock(
    origin: datetime, origin_at: float, scale: float
) -> tuple[Callable[[], datetime], Callable[[threading.Event, float], bool]]:
    """A market clock ``scale`` x real time that read ``origin`` at wall time ``origin_at``
    (Unix seconds), and the matching wait (``seconds`` of market time). For accelerated
    dev/test runs against a fake venue on the same clock (ENGINE_FEED_TIME_*)."""
    if scale <= 0:
        raise ValueError(f"feed time scale must be > 0, got {scale}")
    anchor = time.monotonic() - (time.time() - origin_at)

    def clock() -> datetime:
        return origin + timedelta(seconds=(time.monotonic() - anchor) * scale)

    def wait(stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds) / scale)

    return clock, wait


class FeedState(StrEnum):
    CONNECTING = "connecting"
    BACKFILLING = "backfilling"
    LIVE = "live"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Subscription:
    """One series to stream: our instrument symbol (``BTC-USD``, ``AAPL``), a timeframe
    from ``TIMEFRAMES``, and the open time of the last bar already stored (None: start
    from the venue's most recent history)."""

    instrument: str
    timeframe: str
    since: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.instrument, self.timeframe)


class FeedSink(Protocol):
    def on_bar(self, feed: str, timeframe: str, bar: Bar) -> None: ...

    def on_reject(self, feed: str, rejection: Rejection) -> None: ...

    def on_state(self, feed: str, state: FeedState, detail: str = "") -> None: ...


class SeriesGate:
    """Per series: drop already-emitted bars, validate the rest, emit in order."""

    def __init__(
        self,
        feed: str,
        subscription: Subscription,
        sink: FeedSink,
        *,
        validation: ValidationConfig | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.feed = feed
        self.subscription = subscription
        self.sink = sink
        self.clock = clock
        self.validator = SeriesValidator(validation, last_ts=subscription.since)
        self.last_ts: datetime | None = subscription.since
        self.emitted = 0
        self.rejected = 0

    def offer(self, bar: Bar, *, raw: str = "") -> bool:
        """Emit ``bar`` if it is new and valid; True when emitted."""
        if self.last_ts is not None and bar.ts <= self.last_ts:
            return False  # overlap with what was already emitted (backfill, repeat poll)
        reason = self.validator.check(bar, now=self.clock())
        if reason is not None:
            self.reject(reason, raw or repr(bar))
            return False
        # The sink first: a bar it could not take is not counted as emitted (sent again).
        self.sink.on_bar(self.feed, self.subscription.timeframe, bar)
        self.last_ts = bar.ts
        self.emitted += 1
        return True

    def reject(self, reason: str, raw: str) -> None:
        self.rejected += 1
        source = f"{self.feed}:{self.subscription.instrument}:{self.subscription.timeframe}"
        self.sink.on_reject(self.feed, Rejection(source=source, line=0, reason=reason, raw=raw))


class LiveFeed(ABC):
    """A venue's stream of closed bars for a set of subscriptions."""

    name: str

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        sink: FeedSink,
        *,
        validation: ValidationConfig | Mapping[str, ValidationConfig] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``validation``: one config for every series, or one per instrument symbol."""
        if not subscriptions:
            raise ValueError(f"{type(self).__name__} needs at least one subscription")
        for sub in subscriptions:
            timeframe_delta(sub.timeframe)
            if sub.since is not None and sub.since.tzinfo is None:
                raise ValueError(f"subscription {sub.key}: since must be timezone-aware UTC")
        self.subscriptions = tuple(subscriptions)
        self.sink = sink
        self.clock = clock
        self.gates = {
            sub.key: SeriesGate(
                self.name,
                sub,
                sink,
                validation=validation.get(sub.instrument)
                if isinstance(validation, Mapping)
                else validation,
                clock=clock,
            )
            for sub in self.subscriptions
        }

    def state(self, state: FeedState, detail: str = "") -> None:
        logger.info("feed %s: %s%s", self.name, state, f" ({detail})" if detail else "")
        self.sink.on_state(self.name, state, detail)

    @abstractmethod
    def run(self, stop: threading.Event) -> None:
        """Stream until ``stop`` is set: connect, backfill every series after its last
        emitted bar, then emit closed bars as they close; on a lost connection report
        DISCONNECTED, wait (backoff, interruptible by ``stop``) and do it again."""
