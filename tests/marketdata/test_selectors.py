"""daily_closes (the VaR window's input) against the plain scan-and-sort it replaced."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from apps.marketdata.models import Bar, Instrument
from apps.marketdata.selectors import daily_closes

# The previous implementation: every bar of the window, sorted. Obviously right, slow.
REFERENCE_SQL = """
    SELECT DISTINCT ON (instrument_id, day) instrument_id, day, close
    FROM (
        SELECT instrument_id, ts, close,
               (date_trunc('day', (ts AT TIME ZONE 'UTC') - %(offset)s))::date AS day
        FROM marketdata_bar
        WHERE instrument_id = ANY(%(ids)s) AND ts >= %(since)s AND ts <= %(until)s
    ) b
    ORDER BY instrument_id, day, ts DESC
"""


def _reference(ids: list[int], days: int, offset: timedelta) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(ts) FROM marketdata_bar WHERE instrument_id = ANY(%s)", [ids])
        until = cursor.fetchone()[0]
        cursor.execute(
            REFERENCE_SQL,
            {
                "offset": offset,
                "ids": ids,
                "since": until - timedelta(days=days + 1),
                "until": until,
            },
        )
        out: dict = {}
        for instrument_id, day, close in cursor.fetchall():
            out.setdefault(instrument_id, {})[day] = close
    return out


@pytest.mark.django_db
@pytest.mark.parametrize("boundary", ["00:00", "21:30"])
def test_daily_closes_when_two_timeframes_and_gaps_then_same_as_full_scan(
    settings, boundary
) -> None:
    settings.RISK_DAY_BOUNDARY_UTC = boundary
    rng = random.Random(11)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    bars = []
    ids = []
    for symbol in ("AAA-USD", "BBB-USD"):
        inst = Instrument.objects.create(symbol=symbol, base=symbol[:3], quote="USD")
        ids.append(inst.pk)
        for timeframe, step, count in (
            ("1h", timedelta(hours=1), 24 * 40),
            ("1d", timedelta(days=1), 45),
        ):
            for i in range(count):
                if rng.random() < 0.15:  # gaps: missing bars, whole missing days
                    continue
                ts = (
                    start
                    + i * step
                    + timedelta(minutes=rng.choice([0, 7]) if timeframe == "1d" else 0)
                )
                price = Decimal(100 + rng.randint(0, 5000)) / 10
                bars.append(Bar(instrument=inst, timeframe=timeframe, ts=ts, open=price, high=price,
                                low=price, close=price, volume=Decimal(1)))  # fmt: skip
    Bar.objects.bulk_create(bars)
    h, m = map(int, boundary.split(":"))

    got = daily_closes(instrument_ids=ids, days=30)

    assert got == _reference(ids, 30, timedelta(hours=h, minutes=m))
    assert all(len(series) >= 25 for series in got.values())


@pytest.mark.django_db
def test_daily_closes_when_no_bars_then_empty() -> None:
    inst = Instrument.objects.create(symbol="ZZZ-USD", base="ZZZ", quote="USD")
    assert daily_closes(instrument_ids=[inst.pk], days=30) == {}
    assert daily_closes(instrument_ids=[], days=30) == {}
