"""Market data reads: daily closes for VaR and correlations, the latest close per instrument."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection

from apps.model.time import parse_day_boundary

# Per (instrument, timeframe) series, the last bar of each trading day, found by one
# backward probe of the primary key (instrument_id, timeframe, ts) per day: a year of
# 1-minute bars costs ~250 index probes per series, not a scan and sort of ~360,000 rows.
# The series are listed by a skip scan of the same index (recursive CTE), not a DISTINCT.
_SERIES = """
WITH RECURSIVE series AS (
    (SELECT instrument_id, timeframe FROM marketdata_bar
     WHERE instrument_id = ANY(%(ids)s) ORDER BY instrument_id, timeframe LIMIT 1)
    UNION ALL
    SELECT n.instrument_id, n.timeframe FROM series s, LATERAL (
        SELECT instrument_id, timeframe FROM marketdata_bar b
        WHERE b.instrument_id = ANY(%(ids)s)
          AND (b.instrument_id, b.timeframe) > (s.instrument_id, s.timeframe)
        ORDER BY instrument_id, timeframe LIMIT 1
    ) n
)"""
_DAILY_CLOSES_SQL = (
    _SERIES  # noqa: S608 - constant SQL joined at import, values as parameters
    + """, days AS (
    SELECT d::date AS day, (d::date + %(offset)s) AT TIME ZONE 'UTC' AS starts
    FROM generate_series(
        date_trunc('day', (%(since)s::timestamptz AT TIME ZONE 'UTC') - %(offset)s),
        date_trunc('day', (%(until)s::timestamptz AT TIME ZONE 'UTC') - %(offset)s),
        interval '1 day'
    ) AS d
)
SELECT DISTINCT ON (s.instrument_id, days.day) s.instrument_id, days.day, last.close
FROM series s CROSS JOIN days CROSS JOIN LATERAL (
    SELECT ts, close FROM marketdata_bar b
    WHERE b.instrument_id = s.instrument_id AND b.timeframe = s.timeframe
      AND b.ts >= greatest(days.starts, %(since)s::timestamptz)
      AND b.ts < days.starts + interval '1 day'
      AND b.ts <= %(until)s::timestamptz
    ORDER BY b.ts DESC LIMIT 1
) last
ORDER BY s.instrument_id, days.day, last.ts DESC
"""
)

_LAST_TS_SQL = (
    _SERIES  # noqa: S608 - constant SQL joined at import, values as parameters
    + """
SELECT max(last.ts) FROM series s CROSS JOIN LATERAL (
    SELECT ts FROM marketdata_bar b
    WHERE b.instrument_id = s.instrument_id AND b.timeframe = s.timeframe
    ORDER BY b.ts DESC LIMIT 1
) last
"""
)


def daily_closes(
    *, instrument_ids: list[int], days: int, until: datetime | None = None
) -> dict[int, dict[date, Decimal]]:
    """The last close of each trading day (RISK_DAY_BOUNDARY_UTC) per instrument, from stored bars.

    Any timeframe is used (the latest bar of the day wins, whichever timeframe it has);
    the window is the ``days`` trading days up to the newest stored bar (or ``until``).
    """
    if not instrument_ids:
        return {}
    boundary = parse_day_boundary(settings.RISK_DAY_BOUNDARY_UTC)
    offset = timedelta(hours=boundary.hour, minutes=boundary.minute)
    with connection.cursor() as cursor:
        if until is None:
            cursor.execute(_LAST_TS_SQL, {"ids": instrument_ids})
            until = cursor.fetchone()[0]
            if until is None:
                return {}
        since = until - timedelta(days=days + 1)
        cursor.execute(
            _DAILY_CLOSES_SQL,
            {"offset": offset, "ids": instrument_ids, "since": since, "until": until},
        )
        out: dict[int, dict[date, Decimal]] = defaultdict(dict)
        for instrument_id, day, close in cursor.fetchall():
            out[instrument_id][day] = close
    return dict(out)


def last_closes(symbols: list[str]) -> dict[str, Decimal]:
    """The latest stored close of each instrument in ``symbols`` that has a bar."""
    if not symbols:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.symbol, (SELECT b.close FROM marketdata_bar b WHERE b.instrument_id = i.id
                              ORDER BY b.ts DESC LIMIT 1)
            FROM marketdata_instrument i WHERE i.symbol = ANY(%s)
            """,
            [symbols],
        )
        return {symbol: close for symbol, close in cursor.fetchall() if close is not None}
