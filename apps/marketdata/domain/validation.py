"""Bar validation: the OHLC sanity rules of one bar, and the series rules of a stream.

``validate_bar`` judges one bar on its own (plus the previous accepted ts);
``SeriesValidator`` adds what needs the series: a bar dated in the future, and an
absurd jump from the previous accepted close. Both return the first rejection
reason, or None. The CSV reader (``csvfile.read_bars``) applies the same rules with
a fast path for clean rows and ``SeriesValidator`` for the rest.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from apps.model.bars import Bar

UNPARSEABLE = "unparseable"  # from the reader: wrong column count, bad number or timestamp
NAN = "nan"  # NaN or infinity in any price or the volume
NON_POSITIVE_PRICE = "non_positive_price"  # any of open/high/low/close <= 0
OUT_OF_RANGE = "out_of_range"  # a price or the volume the bars table cannot hold
HIGH_BELOW_LOW = "high_below_low"
OPEN_OUTSIDE_RANGE = "open_outside_range"  # open not within [low, high]
CLOSE_OUTSIDE_RANGE = "close_outside_range"  # close not within [low, high]
NEGATIVE_VOLUME = "negative_volume"
DUPLICATE_TIMESTAMP = "duplicate_timestamp"  # same ts as the previous accepted bar
OUT_OF_ORDER_TIMESTAMP = "out_of_order_timestamp"  # earlier than the previous accepted bar
FUTURE_TIMESTAMP = "future_timestamp"  # ts later than now + max_future_skew
ABSURD_JUMP = "absurd_jump"  # beyond max_move_pct, or volatility_multiple x recent volatility

# Every reason, in the order they are checked.
REASONS: tuple[str, ...] = (
    UNPARSEABLE,
    NAN,
    NON_POSITIVE_PRICE,
    OUT_OF_RANGE,
    HIGH_BELOW_LOW,
    OPEN_OUTSIDE_RANGE,
    CLOSE_OUTSIDE_RANGE,
    NEGATIVE_VOLUME,
    DUPLICATE_TIMESTAMP,
    OUT_OF_ORDER_TIMESTAMP,
    FUTURE_TIMESTAMP,
    ABSURD_JUMP,
)

# What the bars table holds (apps.core.fields): PriceField is numeric(28, 12), so at
# most 16 integer digits, and a positive price below 1e-12 would be stored as 0;
# QuantityField is numeric(30, 12), 18 integer digits.
PRICE_MIN = Decimal("1e-12")
PRICE_MAX = Decimal("9999999999999999.999999999999")
VOLUME_MAX = Decimal("999999999999999999.999999999999")


def validate_bar(bar: Bar, previous_ts: datetime | None) -> str | None:
    """Return the first rejection reason for ``bar``, or None if it is good.

    ``previous_ts`` is the ts of the last ACCEPTED bar of the same series (None for
    the first bar). Zero volume is valid (venues emit flat zero-volume candles).
    Never raises for any Decimal value (NaN, infinity, 1e400, 1e-400).
    """
    o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    if not (o.is_finite() and h.is_finite() and lo.is_finite() and c.is_finite() and v.is_finite()):
        return NAN
    if o <= 0 or h <= 0 or lo <= 0 or c <= 0:
        return NON_POSITIVE_PRICE
    if min(o, h, lo, c) < PRICE_MIN or max(o, h, lo, c) > PRICE_MAX or v > VOLUME_MAX:
        return OUT_OF_RANGE
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
    """Limits beyond the OHLC sanity rules, per instrument (see ``SeriesValidator``).

    - ``max_future_skew``: a bar whose open time is later than now + this is rejected
      (FUTURE_TIMESTAMP). Venue clocks drift by a second or two, hence the margin.
    - ``max_move_pct``: ABSURD_JUMP when the close is more than ``1 + max_move_pct``
      times the previous accepted close, or less than that close divided by it, or the
      high is more than ``1 + max_move_pct`` times it. 40 = a factor of 41 either
      way. The low is not checked against it: real files have one-bar wicks to near
      zero (Coinbase BTC-USD 2017-04-15 low 0.06 at ~1,180, AAPL 2009-09-21 low 10.59
      at ~184) that the venue printed; the recorded data's largest real move is AIG's
      1:20 reverse split (+1,932% high over the previous close, 2009-07-01).
    - ``volatility_multiple``: None (default) = off. Otherwise ABSURD_JUMP also when,
      after ``volatility_min_bars`` accepted bars, the bar's move from the previous
      close (|ln|, divided by sqrt(elapsed / smallest step seen) so gaps may move
      more) or its own range ln(high/low) exceeds this multiple of the mean bar size
      (max of the two) over the last ``volatility_window`` accepted bars. Every real
      file in shared/data stays under 170x (bad-print wicks); 250 accepts them all.
      It costs the CSV reader its fast path (see ``csvfile.read_bars``).
    """

    max_future_skew: timedelta = timedelta(seconds=5)
    max_move_pct: Decimal = Decimal(40)
    volatility_multiple: float | None = None
    volatility_window: int = 100
    volatility_min_bars: int = 30

    def __post_init__(self) -> None:
        if not isinstance(self.max_future_skew, timedelta) or self.max_future_skew < timedelta(0):
            raise ValueError(
                f"max_future_skew must be a timedelta >= 0, got {self.max_future_skew!r}"
            )
        if not (
            isinstance(self.max_move_pct, Decimal)
            and self.max_move_pct.is_finite()
            and self.max_move_pct > 0
        ):
            raise ValueError(
                f"max_move_pct must be a positive finite Decimal (40 = a factor of 41), "
                f"got {self.max_move_pct!r}"
            )
        m = self.volatility_multiple
        if m is not None and not (
            isinstance(m, int | float) and not isinstance(m, bool) and math.isfinite(m) and m > 0
        ):
            raise ValueError(f"volatility_multiple must be a positive number or None, got {m!r}")
        for name in ("volatility_window", "volatility_min_bars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.volatility_min_bars > self.volatility_window:
            raise ValueError(
                f"volatility_min_bars ({self.volatility_min_bars}) must be <= "
                f"volatility_window ({self.volatility_window})"
            )

    @property
    def move_factor(self) -> Decimal:
        return 1 + self.max_move_pct


CONFIG_KEYS: tuple[str, ...] = tuple(f.name for f in fields(ValidationConfig))


def validation_config_from(
    values: Mapping[str, object], *, base: ValidationConfig | None = None, where: str = ""
) -> ValidationConfig:
    """A ``ValidationConfig`` from plain settings values (JSON-friendly), over ``base``.

    ``max_future_skew`` is in seconds; ``max_move_pct`` a number or decimal string;
    ``volatility_multiple`` a number or null. ValueError names ``where``, the key
    and what is accepted.
    """
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(values) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"{prefix}unknown key(s) {', '.join(unknown)}; accepted: {', '.join(CONFIG_KEYS)}"
        )
    changes: dict[str, object] = {}
    for key, raw in values.items():
        try:
            changes[key] = _convert(key, raw)
        except (TypeError, ValueError, ArithmeticError):
            raise ValueError(f"{prefix}{key}={raw!r} is not valid: {_HINTS[key]}") from None
    try:
        return replace(base or ValidationConfig(), **changes)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"{prefix}{exc}") from None


DEFAULT_KEY = "default"


def validation_configs(setting: object) -> dict[str, ValidationConfig]:
    """Parse the ``MARKETDATA_VALIDATION`` setting: ``{"default": {...}, "SYMBOL": {...}}``.

    Returns a config per key (symbols upper-cased); each symbol's entry overrides the
    default's. ValueError naming every problem (``validation_settings_problems``).
    """
    problems, configs = _parse_settings(setting)
    if problems:
        raise ValueError("; ".join(problems))
    return configs


def validation_settings_problems(setting: object) -> list[str]:
    """Every problem with a ``MARKETDATA_VALIDATION`` value, each naming the entry."""
    return _parse_settings(setting)[0]


def _parse_settings(setting: object) -> tuple[list[str], dict[str, ValidationConfig]]:
    example = '{"default": {"max_move_pct": 40}, "AIG": {"max_move_pct": 60}}'
    if not isinstance(setting, Mapping):
        return [f"must be a mapping of symbol to limits, e.g. {example}"], {}
    problems: list[str] = []
    configs: dict[str, ValidationConfig] = {}
    default = ValidationConfig()
    entries = dict(setting)
    base_values = entries.pop(DEFAULT_KEY, {})
    for key, values in [(DEFAULT_KEY, base_values), *entries.items()]:
        if not isinstance(key, str) or not key.strip():
            problems.append(f"entry {key!r}: the key must be a symbol (e.g. BTC-USDT) or default")
            continue
        if not isinstance(values, Mapping):
            problems.append(f"entry {key!r} must be a mapping of limits, e.g. {example}")
            continue
        try:
            config = validation_config_from(
                values, base=configs.get(DEFAULT_KEY, default), where=f"entry {key!r}"
            )
        except ValueError as exc:
            problems.append(str(exc))
            continue
        symbol = key if key == DEFAULT_KEY else key.strip().upper()
        if symbol in configs and key != DEFAULT_KEY:
            problems.append(f"entry {key!r}: symbol {symbol} is given twice; give it once")
            continue
        configs[symbol] = config
    return problems, configs


_HINTS = {
    "max_future_skew": "give seconds >= 0 (e.g. 5)",
    "max_move_pct": "give a positive fraction (e.g. 40 = a move of up to 41x either way)",
    "volatility_multiple": "give a positive number (e.g. 250) or null for off",
    "volatility_window": "give an integer >= 1 (e.g. 100)",
    "volatility_min_bars": "give an integer >= 1, at most volatility_window (e.g. 30)",
}


def _convert(key: str, raw: object) -> object:
    if isinstance(raw, bool):
        raise TypeError(key)
    if key == "max_future_skew":
        seconds = float(raw)  # type: ignore[arg-type]
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(key)
        return timedelta(seconds=seconds)
    if key == "max_move_pct":
        if isinstance(raw, float):
            raw = repr(raw)
        if not isinstance(raw, str | int):
            raise TypeError(key)
        try:
            return Decimal(str(raw).strip())
        except InvalidOperation:
            raise ValueError(key) from None
    if key == "volatility_multiple":
        if raw is None:
            return None
        return float(raw)  # type: ignore[arg-type]
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if not isinstance(raw, int | str):
        raise TypeError(key)
    return int(raw)


class SeriesValidator:
    """Stateful validation of ONE series (instrument, timeframe), bar after bar.

    ``check(bar, now=...)`` returns the rejection reason or None. Only an accepted bar
    changes the state (the last accepted ts and close, the recent bar sizes), so one
    bad bar never makes later good bars look out of order or jumpy. ``now=None``
    skips the future-timestamp rule (replays of recorded data).
    """

    def __init__(
        self, config: ValidationConfig | None = None, *, last_ts: datetime | None = None
    ) -> None:
        self.config = config or ValidationConfig()
        self.last_ts = last_ts
        self.last_close: Decimal | None = None
        self._factor = self.config.move_factor
        self._multiple = self.config.volatility_multiple
        self._sizes: deque[float] = deque(maxlen=self.config.volatility_window)
        self._size_sum = 0.0
        self._step: float | None = None  # smallest gap between accepted bars, seconds

    def check(self, bar: Bar, *, now: datetime | None = None) -> str | None:
        reason = validate_bar(bar, self.last_ts)
        if reason is not None:
            return reason
        if now is not None and bar.ts > now + self.config.max_future_skew:
            return FUTURE_TIMESTAMP
        prev = self.last_close
        if prev is not None:
            factor = self._factor
            if bar.high > prev * factor or bar.close * factor < prev:
                return ABSURD_JUMP
        size = None
        if self._multiple is not None:
            size = self._volatility_check(bar)
            if size is None:
                return ABSURD_JUMP
        self._accept(bar, size)
        return None

    def _volatility_check(self, bar: Bar) -> float | None:
        """The bar's size (for the window), or None when it is an absurd jump."""
        rng = math.log(float(bar.high) / float(bar.low))
        prev = self.last_close
        if prev is None:
            return rng
        move = abs(math.log(float(bar.close) / float(prev)))
        count = len(self._sizes)
        if count >= self.config.volatility_min_bars and self._size_sum > 0:
            limit = self._multiple * self._size_sum / count  # type: ignore[operator]
            scale = 1.0
            if self._step and self.last_ts is not None:
                elapsed = (bar.ts - self.last_ts).total_seconds()
                scale = math.sqrt(max(1.0, elapsed / self._step))
            if rng > limit or move > limit * scale:
                return None
        return max(rng, move)

    def _accept(self, bar: Bar, size: float | None) -> None:
        if size is not None:
            sizes = self._sizes
            if len(sizes) == sizes.maxlen:
                self._size_sum -= sizes[0]
            sizes.append(size)
            self._size_sum += size
            if self.last_ts is not None and self.last_close is not None:
                gap = (bar.ts - self.last_ts).total_seconds()
                if gap > 0 and (self._step is None or gap < self._step):
                    self._step = gap
        self.last_ts = bar.ts
        self.last_close = bar.close
