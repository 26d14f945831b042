"""Bar feeds: the ``Feed`` protocol and ``ReplayFeed`` (recorded files, paced replay)."""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Protocol, runtime_checkable

from apps.marketdata.domain.csvfile import (
    OnReject,
    PathLike,
    Rejection,
    instrument_from_path,
    read_bars,
    timeframe_from_path,
)
from apps.marketdata.domain.validation import ValidationConfig
from apps.model.bars import Bar

DEFAULT_MAX_SLEEP = 5.0  # seconds; one data gap never stalls a replay for longer
_FALLBACK_STEP = timedelta(minutes=1)  # loop step when neither names nor data give one
_bar_ts = attrgetter("ts")


@runtime_checkable
class Feed(Protocol):
    """A source of bars in non-decreasing ``ts`` order (ties across instruments)."""

    name: str

    def __iter__(self) -> Iterator[Bar]: ...


class ReplayFeed:
    """Replay recorded CSV files merged in time order, paced at ``speed`` x real time.

    - ``paths``: one or more OHLCV files (see ``read_bars``); bars with the same ts
      come out in the order of ``paths``.
    - ``speed``: 1.0 = real time, 60.0 = a minute of data per second, 0 = no sleeping.
      Before each bar it calls ``sleep((bar.ts - previous.ts) / speed)`` seconds, capped
      at ``max_sleep`` so data gaps do not stall a demo; equal timestamps do not sleep.
    - ``sleep``: injected for tests (default ``time.sleep``).
    - ``on_reject``: called with each ``Rejection`` (also counted in ``rejected``).
    - ``start``: skip (without sleeping) bars before this aware datetime.
    - ``loop``: replay forever; each new pass shifts every ts forward by the span of
      the data plus one bar step, so timestamps keep increasing. Rejections are
      reported on the first pass only.
    - ``validation_for``: the validation limits of an instrument (callers with settings
      pass ``apps.marketdata.config.validation_config_for``); default ``ValidationConfig()``.

    Iterating the feed again starts a new replay (files are re-read).
    """

    name = "replay"

    def __init__(
        self,
        paths: PathLike | Iterable[PathLike],
        speed: float,
        sleep: Callable[[float], object] = time.sleep,
        on_reject: OnReject | None = None,
        start: datetime | None = None,
        loop: bool = False,
        max_sleep: float = DEFAULT_MAX_SLEEP,
        validation_for: Callable[[str], ValidationConfig] | None = None,
    ) -> None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self.paths: tuple[PathLike, ...] = tuple(paths)
        if not self.paths:
            raise ValueError("ReplayFeed needs at least one market data file path")
        if speed < 0:
            raise ValueError(f"ReplayFeed speed must be >= 0 (0 = no pacing), got {speed}")
        if max_sleep < 0:
            raise ValueError(f"ReplayFeed max_sleep must be >= 0, got {max_sleep}")
        if start is not None and start.tzinfo is None:
            raise ValueError("ReplayFeed start must be a timezone-aware (UTC) datetime")
        self.speed = float(speed)
        self.sleep = sleep
        self.on_reject = on_reject
        self.start = start
        self.loop = loop
        self.max_sleep = float(max_sleep)
        self.validation_for = validation_for
        self.rejected = 0  # rows skipped by the reader (first pass only when looping)
        self.emitted = 0  # bars yielded

    def __repr__(self) -> str:
        return (
            f"ReplayFeed(paths={[os.fspath(p) for p in self.paths]!r}, speed={self.speed}, "
            f"loop={self.loop})"
        )

    def _reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if self.on_reject is not None:
            self.on_reject(rejection)

    @staticmethod
    def _ignore(rejection: Rejection) -> None:
        return None

    def _merged(self, on_reject: OnReject) -> Iterator[Bar]:
        config_for = self.validation_for
        readers = [
            read_bars(
                p,
                on_reject=on_reject,
                validation=config_for(instrument_from_path(p)) if config_for else None,
            )
            for p in self.paths
        ]
        if len(readers) == 1:
            return readers[0]
        return heapq.merge(*readers, key=_bar_ts)

    def _step(self) -> timedelta | None:
        steps = [tf for tf in map(timeframe_from_path, self.paths) if tf is not None]
        return min(steps) if steps else None

    def __iter__(self) -> Iterator[Bar]:
        if not self.loop and self.speed == 0 and self.start is None:
            # Fast path (backtests): no pacing, no shifting.
            for bar in self._merged(self._reject):
                self.emitted += 1
                yield bar
            return
        yield from self._replay()

    def _replay(self) -> Iterator[Bar]:
        speed, sleep, max_sleep, start = self.speed, self.sleep, self.max_sleep, self.start
        step = self._step()
        offset = timedelta(0)
        previous: datetime | None = None
        on_reject: OnReject = self._reject
        while True:
            first: datetime | None = None
            last: datetime | None = None
            smallest_gap: timedelta | None = None
            for bar in self._merged(on_reject):
                ts = bar.ts
                if first is None:
                    first = ts
                elif step is None and ts > last:  # type: ignore[operator]
                    gap = ts - last  # type: ignore[operator]
                    if smallest_gap is None or gap < smallest_gap:
                        smallest_gap = gap
                last = ts
                if offset:
                    ts = ts + offset
                    bar = Bar(
                        bar.instrument, ts, bar.open, bar.high, bar.low, bar.close, bar.volume
                    )
                if start is not None and ts < start:
                    continue
                if speed and previous is not None and ts > previous:
                    sleep(min((ts - previous).total_seconds() / speed, max_sleep))
                previous = ts
                self.emitted += 1
                yield bar
            if not self.loop or first is None or last is None:
                return
            offset += (last - first) + (step or smallest_gap or _FALLBACK_STEP)
            on_reject = self._ignore
