"""Features from bars, with no look-ahead: one definition for training, backtest and live.

Every feature of bar ``t`` is a function of the ``WINDOW`` bars ending at ``t`` only
(bar ``t`` included, nothing after it). The batch function computes each row from its
own trailing window (strided trailing-window reductions, no running sums carried from
the start of the series), so a row's value does not depend on where the series starts
or on anything after it; ``FeatureState`` (live, one bar at a time) calls the same
batch function on its last ``WINDOW`` bars and keeps the last row, so training,
backtest and live trading compute the same numbers with the same code.

Rows without a full window (the first ``WINDOW - 1`` bars, or after a gap) are NaN.
Prices and volumes are float64 here: features are model inputs, not money.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

if TYPE_CHECKING:
    from apps.model.bars import Bar

RETURN_HORIZONS = (1, 5, 15, 60, 240)
VOL_WINDOWS = (15, 60, 240)
SMA_WINDOWS = (15, 60, 240)
RSI_WINDOW = 14
STOCH_WINDOW = 60
VOLUME_Z_WINDOW = 60
WINDOW = 241  # bars needed for one row: the longest look-back (240 returns) + 1

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{h}" for h in RETURN_HORIZONS),
    *(f"vol_{w}" for w in VOL_WINDOWS),
    *(f"dist_sma_{w}" for w in SMA_WINDOWS),
    f"rsi_{RSI_WINDOW}",
    f"stoch_{STOCH_WINDOW}",
    "range_1",
    f"volume_z_{VOLUME_Z_WINDOW}",
    "tod_sin",
    "tod_cos",
)
N_FEATURES = len(FEATURE_NAMES)
_DAY_MINUTES = 1440.0


@dataclass(frozen=True, slots=True)
class BarArrays:
    """Columns of a bar series as float64 arrays, plus the minute of day of each bar."""

    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    minute: np.ndarray  # minutes since 00:00 UTC of each bar's open time

    def __len__(self) -> int:
        return len(self.close)

    @classmethod
    def from_bars(cls, bars: Sequence[Bar]) -> BarArrays:
        return cls(
            high=np.array([float(b.high) for b in bars], dtype=np.float64),
            low=np.array([float(b.low) for b in bars], dtype=np.float64),
            close=np.array([float(b.close) for b in bars], dtype=np.float64),
            volume=np.array([float(b.volume) for b in bars], dtype=np.float64),
            minute=np.array([b.ts.hour * 60 + b.ts.minute for b in bars], dtype=np.float64),
        )


def _trailing(values: np.ndarray, window: int, n: int) -> np.ndarray:
    """Windows of ``window`` values ending at each row ``window-1 .. n-1`` (rows x window).

    A read-only strided view (what ``sliding_window_view`` returns, without its
    argument checking, which costs more than the reduction on a live window).
    """
    values = np.ascontiguousarray(values)
    step = values.strides[0]
    return as_strided(
        values, shape=(len(values) - window + 1, window), strides=(step, step), writeable=False
    )


def _pad(result: np.ndarray, n: int) -> np.ndarray:
    """Put a per-window result at the rows where its windows end; NaN before."""
    out = np.full(n, np.nan)
    out[n - len(result) :] = result
    return out


def feature_matrix(arrays: BarArrays) -> np.ndarray:
    """Return the (n, N_FEATURES) feature matrix; row t uses bars t-WINDOW+1 .. t only.

    Rows before the first full window are NaN (the whole row).
    """
    n = len(arrays)
    out = np.full((n, N_FEATURES), np.nan)
    if n < WINDOW:
        return out
    close = arrays.close
    logc = np.log(close)
    r1 = np.full(n, np.nan)
    r1[1:] = logc[1:] - logc[:-1]
    cols: list[np.ndarray] = []
    for h in RETURN_HORIZONS:
        col = np.full(n, np.nan)
        col[h:] = logc[h:] - logc[:-h]
        cols.append(col)
    for w in VOL_WINDOWS:
        cols.append(_pad(_trailing(r1[1:], w, n).std(axis=1), n))
    for w in SMA_WINDOWS:
        cols.append(close / _pad(_trailing(close, w, n).mean(axis=1), n) - 1.0)
    diff = np.diff(close)
    gains = _trailing(np.maximum(diff, 0.0), RSI_WINDOW, n).mean(axis=1)
    losses = _trailing(np.maximum(-diff, 0.0), RSI_WINDOW, n).mean(axis=1)
    total = gains + losses
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, gains / np.where(total > 0, total, 1.0), 0.5)
    cols.append(_pad(rsi, n))
    low_min = _pad(_trailing(arrays.low, STOCH_WINDOW, n).min(axis=1), n)
    high_max = _pad(_trailing(arrays.high, STOCH_WINDOW, n).max(axis=1), n)
    rng = high_max - low_min
    with np.errstate(invalid="ignore", divide="ignore"):
        cols.append(np.where(rng > 0, (close - low_min) / np.where(rng > 0, rng, 1.0), 0.5))
    cols.append((arrays.high - arrays.low) / close)
    vw = _trailing(arrays.volume, VOLUME_Z_WINDOW, n)
    vmean = _pad(vw.mean(axis=1), n)
    vstd = _pad(vw.std(axis=1), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols.append(
            np.where(vstd > 0, (arrays.volume - vmean) / np.where(vstd > 0, vstd, 1.0), 0.0)
        )
    angle = arrays.minute * (2.0 * math.pi / _DAY_MINUTES)
    cols.append(np.sin(angle))
    cols.append(np.cos(angle))
    out[:] = np.column_stack(cols)
    out[: WINDOW - 1] = np.nan  # not a full window: no row at all
    return out


def gap_positions(ts: Sequence[datetime], step: timedelta) -> list[int]:
    """Indexes i where bar i does not follow bar i-1 by exactly ``step`` (missing bars)."""
    return [i for i in range(1, len(ts)) if ts[i] - ts[i - 1] != step]


class FeatureState:
    """Live features, one bar at a time, through the batch function (identical numbers).

    Keeps the last ``WINDOW`` bars of one instrument. A gap (a bar that does not follow
    the previous one by ``step``) restarts the window: features are None until a full
    window of contiguous bars has been seen again.
    """

    __slots__ = ("_close", "_high", "_last_ts", "_low", "_minute", "_volume", "step")

    def __init__(self, step: timedelta = timedelta(minutes=1)) -> None:
        self.step = step
        self._last_ts: datetime | None = None
        self._high: deque[float] = deque(maxlen=WINDOW)
        self._low: deque[float] = deque(maxlen=WINDOW)
        self._close: deque[float] = deque(maxlen=WINDOW)
        self._volume: deque[float] = deque(maxlen=WINDOW)
        self._minute: deque[float] = deque(maxlen=WINDOW)

    def update(self, bar: Bar) -> np.ndarray | None:
        """Add ``bar`` and return its feature vector, or None while warming up."""
        last = self._last_ts
        if last is not None and bar.ts - last != self.step:
            for column in (self._high, self._low, self._close, self._volume, self._minute):
                column.clear()
        self._last_ts = bar.ts
        self._high.append(float(bar.high))
        self._low.append(float(bar.low))
        self._close.append(float(bar.close))
        self._volume.append(float(bar.volume))
        self._minute.append(float(bar.ts.hour * 60 + bar.ts.minute))
        if len(self._close) < WINDOW:
            return None
        arrays = BarArrays(
            high=np.array(self._high),
            low=np.array(self._low),
            close=np.array(self._close),
            volume=np.array(self._volume),
            minute=np.array(self._minute),
        )
        row: np.ndarray = feature_matrix(arrays)[-1]
        return row

    @property
    def ready(self) -> bool:
        return len(self._close) == WINDOW
