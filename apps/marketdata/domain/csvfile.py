"""Read OHLCV CSV files (plain or ``.csv.gz``) into validated ``Bar``s, fast.

Format (``shared/data/README.md``): UTF-8, header ``timestamp,open,high,low,close,volume``,
``timestamp`` = ``YYYY-MM-DDTHH:MM:SSZ`` (bar open time, UTC), numbers as decimal text
(possibly in exponent form such as ``5.33e-05``). File names are
``<INSTRUMENT>_<timeframe>[_<venue>].csv[.gz]``.

Performance matters here (the backtest budget is >= 200k bars/s end to end), so the
row loop is written for speed: ``str.split``, ``datetime.fromisoformat`` (C, ~80 ns),
``Decimal(text)``, a fast path that accepts a clean row with one comparison chain
(OHLC order, the table's numeric range, a ts after the last one and not in the
future, a close and high within ``max_move_pct`` of the last close: one Decimal
multiplication a row), and ``SeriesValidator.check`` only for rows that fail it
(which decides the exact reason). A config with ``volatility_multiple`` sends every
row through ``SeriesValidator`` (about 3x slower; it is per-instrument opt-in).
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from apps.marketdata.domain.validation import (
    PRICE_MAX,
    PRICE_MIN,
    UNPARSEABLE,
    VOLUME_MAX,
    SeriesValidator,
    ValidationConfig,
)
from apps.model.bars import Bar, _BarBuilder
from apps.model.errors import MarketDataError

HEADER = "timestamp,open,high,low,close,volume"
COLUMNS: tuple[str, ...] = tuple(HEADER.split(","))

_TIMEFRAME_RE = re.compile(r"^(\d+)([smhdw])$")
_TIMEFRAME_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MIN_TS = datetime.min.replace(tzinfo=UTC)  # "no previous bar" sentinel for the hot loop


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row ``read_bars`` skipped. ``line`` is the 1-based file line (header = 1)."""

    source: str
    line: int
    reason: str
    raw: str


PathLike = str | os.PathLike[str]
OnReject = Callable[[Rejection], object]


def _stem(path: PathLike) -> str:
    name = Path(path).name
    for suffix in (".gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def instrument_from_path(path: PathLike) -> str:
    """``.../ETH-BTC_5m_bittrex.csv`` -> ``"ETH-BTC"``; ``SPY_1d.csv`` -> ``"SPY"``."""
    return _stem(path).split("_", 1)[0]


def timeframe_from_path(path: PathLike) -> timedelta | None:
    """``ETH-BTC_5m_bittrex.csv`` -> 5 minutes; None when the name has no timeframe.

    Units: s, m (minutes), h, d, w. ``XRP-ETH_trades_binance.csv`` -> None.
    """
    parts = _stem(path).split("_")
    if len(parts) < 2:
        return None
    match = _TIMEFRAME_RE.match(parts[1])
    if match is None or int(match.group(1)) == 0:
        return None
    return timedelta(**{_TIMEFRAME_UNITS[match.group(2)]: int(match.group(1))})


def _open(path: PathLike, source: str) -> TextIO:
    try:
        if source.lower().endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")  # closed by _rows / _read_header
    except FileNotFoundError:
        raise MarketDataError(
            f"market data file not found: {source} (pass a path to a CSV, plain or .csv.gz, "
            f"with header {HEADER})",
            reason="file_not_found",
            source=source,
        ) from None
    except OSError as exc:
        raise MarketDataError(
            f"cannot open market data file {source}: {exc.strerror or exc} "
            f"(pass a readable CSV file with header {HEADER})",
            reason="unreadable",
            source=source,
        ) from exc


def _read_header(f: TextIO, source: str) -> None:
    try:
        first = f.readline()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        f.close()
        raise MarketDataError(
            f"cannot read market data file {source}: {exc} (is it a UTF-8 CSV, "
            f"gzip-compressed only if the name ends in .gz?)",
            reason="unreadable",
            source=source,
            line=1,
        ) from exc
    found = first.strip().lstrip("\ufeff").replace(" ", "")
    if found != HEADER:
        f.close()
        shown = repr(first.rstrip("\r\n")[:200]) if first else "nothing (empty file)"
        raise MarketDataError(
            f"bad header in market data file {source}: found {shown}, expected {HEADER!r} "
            f"(first line must name the columns in this order)",
            reason="bad_header",
            source=source,
            line=1,
            found=first.rstrip("\r\n")[:200],
            expected=HEADER,
        )


def read_bars(
    path: PathLike,
    *,
    on_reject: OnReject | None = None,
    instrument: str | None = None,
    validation: ValidationConfig | None = None,
    now: datetime | None = None,
) -> Iterator[Bar]:
    """Yield the good bars of an OHLCV CSV file (plain, or gzip if the name ends in .gz).

    The file is opened and its header checked immediately, so a missing file or a
    wrong header raises ``MarketDataError`` at the call, not at the first ``next()``.
    Each bad row is skipped and reported as ``on_reject(Rejection(...))``; duplicate
    and out-of-order timestamps are judged against the last ACCEPTED bar. Blank lines
    are ignored. ``instrument`` defaults to ``instrument_from_path(path)``.
    ``validation`` (default ``ValidationConfig()``; callers with settings pass
    ``apps.marketdata.config.validation_config_for(instrument)``) sets the series
    rules: a bar later than ``now`` (default: the wall clock at the call) plus
    ``max_future_skew`` is FUTURE_TIMESTAMP, a price or volume the bars table cannot
    hold is OUT_OF_RANGE, a jump beyond the limits is ABSURD_JUMP; all judged against
    the last ACCEPTED bar, so one bad row never condemns the rows after it.
    A read error in the middle of the file (corrupt gzip, bad UTF-8) raises
    ``MarketDataError`` naming the file and line.
    """
    source = os.fspath(path)
    if not isinstance(source, str):  # pragma: no cover - bytes paths
        source = os.fsdecode(source)
    f = _open(path, source)
    _read_header(f, source)
    config = validation or ValidationConfig()
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        f.close()
        raise ValueError("read_bars now must be a timezone-aware (UTC) datetime")
    return _rows(f, source, instrument or instrument_from_path(source), on_reject, config, now)


def _rows(
    f: TextIO,
    source: str,
    instrument: str,
    on_reject: OnReject | None,
    config: ValidationConfig,
    now: datetime,
) -> Iterator[Bar]:
    # Locals for speed: this loop runs once per row.
    dec = Decimal
    parse_ts = datetime.fromisoformat
    utc = UTC
    builder = _BarBuilder
    bar_cls = Bar
    min_ts = _MIN_TS
    prev = min_ts
    max_ts = now + config.max_future_skew
    pmin, pmax, vmax = PRICE_MIN, PRICE_MAX, VOLUME_MAX
    factor = config.move_factor
    prev_c = dec(0)  # no previous close: any close * factor >= 0
    hi_bound = pmax  # highest acceptable high: previous close * factor
    # The volatility rule needs every row's float sizes: no fast path then.
    fast = config.volatility_multiple is None
    validator = SeriesValidator(config)
    check = validator.check
    lineno = 1
    with f:
        try:
            for line in f:
                lineno += 1
                try:
                    ts_s, o_s, h_s, l_s, c_s, v_s = line.split(",")
                    ts = parse_ts(ts_s)
                    o = dec(o_s)
                    h = dec(h_s)
                    lo = dec(l_s)
                    c = dec(c_s)
                    v = dec(v_s)  # Decimal() ignores the trailing newline
                    if ts.tzinfo is not utc:
                        ts = _to_utc(ts)
                    # Fast path: a clean row passes this one chain. NaN raises
                    # InvalidOperation in the ordering comparisons; infinity and
                    # 1e400 fail the pmax/vmax bounds, which come before the
                    # multiplication so that it cannot overflow.
                    good = (
                        fast
                        and prev < ts <= max_ts
                        and pmin <= lo <= o <= h <= hi_bound
                        and h <= pmax
                        and lo <= c <= h
                        and (m := c * factor) >= prev_c
                        and 0 <= v <= vmax
                    )
                except ValueError:  # wrong column count, bad timestamp
                    if not line.strip():
                        continue
                    if on_reject is not None:
                        on_reject(Rejection(source, lineno, UNPARSEABLE, line.rstrip("\r\n")))
                    continue
                except InvalidOperation:
                    # Bad number text (Decimal raises it), or a NaN in a comparison.
                    if not _all_numbers(line):
                        if on_reject is not None:
                            on_reject(Rejection(source, lineno, UNPARSEABLE, line.rstrip("\r\n")))
                        continue
                    good = False
                if not good:
                    if fast:  # the validator holds the state only when it sees every row
                        validator.last_ts = None if prev is min_ts else prev
                        validator.last_close = prev_c or None
                    reason = check(bar_cls(instrument, ts, o, h, lo, c, v), now=now)
                    if reason is not None:
                        if on_reject is not None:
                            on_reject(Rejection(source, lineno, reason, line.rstrip("\r\n")))
                        continue
                    m = c * factor  # bounded: the validator accepted c
                prev = ts
                prev_c = c
                hi_bound = m
                bar = builder(instrument, ts, o, h, lo, c, v)
                bar.__class__ = bar_cls  # type: ignore[assignment]  # see _BarBuilder
                yield bar  # type: ignore[misc]
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise MarketDataError(
                f"cannot read market data file {source} after line {lineno}: {exc} "
                f"(the file is corrupt or truncated; re-export it)",
                reason="unreadable",
                source=source,
                line=lineno,
            ) from exc


def _to_utc(ts: datetime) -> datetime:
    """Normalise a parsed timestamp; naive ones are rejected (ValueError)."""
    if ts.tzinfo is None:
        raise ValueError("timestamp without a UTC offset")
    return ts.astimezone(UTC)


def _all_numbers(line: str) -> bool:
    """True when every number field of a 6-column row is valid Decimal text."""
    try:
        for text in line.split(",")[1:]:
            Decimal(text)
    except InvalidOperation:
        return False
    return True
