"""Bar validation: one pure function returning the first rejection reason, or None."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from apps.model.bars import Bar

UNPARSEABLE = "unparseable"  # from the reader: wrong column count, bad number or timestamp
NAN = "nan"  # NaN or infinity in any price or the volume
NON_POSITIVE_PRICE = "non_positive_price"  # any of open/high/low/close <= 0
HIGH_BELOW_LOW = "high_below_low"
OPEN_OUTSIDE_RANGE = "open_outside_range"  # open not within [low, high]
CLOSE_OUTSIDE_RANGE = "close_outside_range"  # close not within [low, high]
NEGATIVE_VOLUME = "negative_volume"
DUPLICATE_TIMESTAMP = "duplicate_timestamp"  # same ts as the previous accepted bar
OUT_OF_ORDER_TIMESTAMP = "out_of_order_timestamp"  # earlier than the previous accepted bar

# Every reason, in the order they are checked.
REASONS: tuple[str, ...] = (
    UNPARSEABLE,
    NAN,
    NON_POSITIVE_PRICE,
    HIGH_BELOW_LOW,
    OPEN_OUTSIDE_RANGE,
    CLOSE_OUTSIDE_RANGE,
    NEGATIVE_VOLUME,
    DUPLICATE_TIMESTAMP,
    OUT_OF_ORDER_TIMESTAMP,
)


def validate_bar(bar: Bar, previous_ts: datetime | None) -> str | None:
    """Return the first rejection reason for ``bar``, or None if it is good.

    ``previous_ts`` is the ts of the last ACCEPTED bar of the same series (None for
    the first bar). Zero volume is valid (venues emit flat zero-volume candles).
    """
    o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    if not (o.is_finite() and h.is_finite() and lo.is_finite() and c.is_finite() and v.is_finite()):
        return NAN
    if o <= 0 or h <= 0 or lo <= 0 or c <= 0:
        return NON_POSITIVE_PRICE
    if h < lo:
        return HIGH_BELOW_LOW
    if o < lo or o > h:
        return OPEN_OUTSIDE_RANGE
    if c < lo or c > h:
        return CLOSE_OUTSIDE_RANGE
    if v < 0:
        return NEGATIVE_VOLUME
    if previous_ts is not None:
        if bar.ts == previous_ts:
            return DUPLICATE_TIMESTAMP
        if bar.ts < previous_ts:
            return OUT_OF_ORDER_TIMESTAMP
    return None


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    """Limits beyond the OHLC sanity rules (per instrument; see SeriesValidator)."""

    max_future_skew: timedelta = timedelta(seconds=5)


class SeriesValidator:
    """Stateful validation of ONE series (instrument, timeframe), bar after bar.

    ``check(bar, now=...)`` returns the rejection reason or None; only an accepted bar
    changes the state (the last accepted ts, the recent volatility), so one bad bar
    never makes later good bars look out of order.
    """

    def __init__(self, config: ValidationConfig | None = None, *, last_ts: datetime | None = None):
        self.config = config or ValidationConfig()
        self.last_ts = last_ts

    def check(self, bar: Bar, *, now: datetime | None = None) -> str | None:
        reason = validate_bar(bar, self.last_ts)
        if reason is None:
            self.last_ts = bar.ts
        return reason
