"""The dev/test feed: recorded files replayed as a live feed (``ReplayFeed`` behind ``LiveFeed``).

Each subscription (instrument, timeframe) takes the files of ``paths`` whose names say
that instrument and timeframe (``BTC-USD_1m_coinbase.csv``); the files are merged in
time order and paced at ``speed`` x real time by ``ReplayFeed``, starting after the
earliest ``since`` of the subscriptions (each series' gate drops what it already has).
Replayed time has no wall clock: the future-timestamp rule does not apply (a looping
replay shifts the data forward past today).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from apps.engine.feeds.base import FeedSink, FeedState, LiveFeed, Subscription
from apps.marketdata.domain.csvfile import (
    Rejection,
    instrument_from_path,
    timeframe_from_path,
)
from apps.marketdata.domain.feed import ReplayFeed
from apps.marketdata.domain.validation import ValidationConfig

_REPLAY_NOW = datetime(9999, 1, 1, tzinfo=UTC)  # replayed time: nothing is "in the future"


def timeframe_label(path: str | Path) -> str:
    """``1m`` / ``5m`` / ``1h`` from a file name (``1m`` when the name says none)."""
    step = timeframe_from_path(path)
    if step is None:
        return "1m"
    minutes = int(step.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes}m"


def replay_series(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """The (instrument, timeframe) series the files hold."""
    return sorted({(instrument_from_path(str(p)), timeframe_label(p)) for p in paths})


class ReplayLiveFeed(LiveFeed):
    name = "replay"

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        sink: FeedSink,
        *,
        paths: Sequence[Path],
        speed: float,
        loop: bool = False,
        validation_for: Callable[[str], ValidationConfig] | None = None,
        clock: Callable[[], datetime] = lambda: _REPLAY_NOW,
    ) -> None:
        self.validation_for = validation_for
        validation = (
            {s.instrument: validation_for(s.instrument) for s in subscriptions}
            if validation_for
            else None
        )
        super().__init__(subscriptions, sink, validation=validation, clock=clock)
        wanted = {s.key for s in self.subscriptions}
        self.paths = [
            p for p in paths if (instrument_from_path(str(p)), timeframe_label(p)) in wanted
        ]
        missing = wanted - {(instrument_from_path(str(p)), timeframe_label(p)) for p in self.paths}
        if missing:
            names = ", ".join(f"{i} {tf}" for i, tf in sorted(missing))
            raise ValueError(f"no replay file for {names} in {[str(p) for p in paths]}")
        self.speed = speed
        self.loop = loop
        self.timeframes = {s.instrument: s.timeframe for s in self.subscriptions}

    def _reject(self, rejection: Rejection) -> None:
        self.sink.on_reject(self.name, rejection)

    def run(self, stop: threading.Event) -> None:
        starts = [s.since for s in self.subscriptions]
        start = None if any(s is None for s in starts) else min(s for s in starts if s)
        self.state(FeedState.LIVE, f"{len(self.paths)} file(s) at {self.speed:g}x")
        feed = ReplayFeed(
            self.paths,
            speed=self.speed,
            loop=self.loop,
            on_reject=self._reject,
            start=start,
            sleep=lambda seconds: stop.wait(seconds),
            validation_for=self.validation_for,
        )
        for bar in feed:
            if stop.is_set():
                break
            gate = self.gates.get((bar.instrument, self.timeframes.get(bar.instrument, "")))
            if gate is not None:
                gate.offer(bar)
        self.state(FeedState.STOPPED, "end of data" if not stop.is_set() else "stopped")
