"""Timezone helpers: the core only handles timezone-aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

# Epoch values at or above this are taken as milliseconds (1e11 s is year 5138).
_EPOCH_MS_THRESHOLD = 100_000_000_000


def ensure_utc(dt: datetime) -> datetime:
    """Return ``dt`` converted to UTC.

    Parameters
    ----------
    dt
        A timezone-aware datetime (any offset).

    Returns
    -------
    datetime
        The same instant with ``tzinfo=UTC``.

    Raises
    ------
    ValueError
        If ``dt`` is naive.
    """
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(f"naive datetime {dt.isoformat()} - pass a timezone-aware UTC datetime")
    if dt.tzinfo is UTC:
        return dt
    return dt.astimezone(UTC)


def parse_utc(value: str) -> datetime:
    """Parse a timestamp string into an aware UTC datetime.

    Accepts ISO 8601 (``2024-01-02T03:04:05Z``, ``2024-01-02 03:04:05+01:00``; a string
    without offset is taken as UTC) and integer Unix epochs in seconds or milliseconds
    (``1704164645`` / ``1704164645000``).

    Parameters
    ----------
    value
        The text to parse; surrounding whitespace is ignored.

    Returns
    -------
    datetime
        Aware datetime with ``tzinfo=UTC``.

    Raises
    ------
    ValueError
        If the text is not a recognised timestamp.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    if text.isdigit():
        number = int(text)
        if number >= _EPOCH_MS_THRESHOLD:
            seconds, millis = divmod(number, 1000)
            return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(milliseconds=millis)
        return datetime.fromtimestamp(number, tz=UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"unparseable timestamp {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return ensure_utc(parsed)


def parse_day_boundary(text: str) -> time:
    """``"HH:MM"`` (UTC) -> ``time``; raises ValueError naming the expected form."""
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"day boundary {text!r} is not HH:MM (e.g. 00:00 or 22:00)") from None


def day_start(ts: datetime, boundary: time) -> datetime:
    """The start of the trading day containing ``ts``: the last ``boundary`` at or before it.

    ``ts`` is aware UTC (market time: the bar's time in a replay); the boundary is a
    UTC wall time, e.g. 22:00 for a day that starts at 22:00 UTC.
    """
    start = datetime.combine(ts.date(), boundary, tzinfo=ts.tzinfo)
    if start > ts:
        start -= timedelta(days=1)
    return start
