"""Pre-deploy "markets closed preferred" (spec 3.3): the NYSE calendar, holidays and early
closes included, on known dates. Times are UTC; New York is UTC-5 in winter, UTC-4 in summer."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from apps.ops import health


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "is_open", "why"),
    [
        # Thanksgiving, Thursday 2026-11-26: closed all day (12:00 New York)
        (utc(2026, 11, 26, 17, 0), False, "holiday"),
        # Independence Day on a Saturday: observed on Friday 2026-07-03 (11:00 New York)
        (utc(2026, 7, 3, 15, 0), False, "holiday"),
        # Juneteenth, Friday 2026-06-19; Good Friday 2026-04-03; New Year 2027-01-01
        (utc(2026, 6, 19, 15, 0), False, "holiday"),
        (utc(2026, 4, 3, 15, 0), False, "holiday"),
        (utc(2027, 1, 1, 15, 0), False, "holiday"),
        # the day after Thanksgiving closes at 13:00 New York (18:00 UTC)
        (utc(2026, 11, 27, 17, 59), True, ""),
        (utc(2026, 11, 27, 18, 0), False, "early close"),
        # Christmas Eve, Thursday 2026-12-24: 13:00 close as well
        (utc(2026, 12, 24, 18, 30), False, "early close"),
        # an ordinary Wednesday: 09:30-16:00 New York = 14:30-21:00 UTC in winter
        (utc(2026, 12, 2, 14, 29), False, "before the open"),
        (utc(2026, 12, 2, 14, 30), True, ""),
        (utc(2026, 12, 2, 20, 59), True, ""),
        (utc(2026, 12, 2, 21, 0), False, "after the 16:00 close"),
        # summer time: 13:30-20:00 UTC; Thursday 2026-07-02 is a full day
        (utc(2026, 7, 2, 19, 59), True, ""),
        (utc(2026, 7, 2, 20, 0), False, "after the 16:00 close"),
        # weekend
        (utc(2026, 11, 28, 15, 0), False, "weekend"),
    ],
)
def test_nyse_open_when_known_date_then_calendar_answer(now, is_open, why):
    assert health.nyse_open(now) is is_open
    assert why in health.nyse_status(now)


def test_nyse_day_when_early_close_then_flagged_with_its_close_time():
    day = health.nyse_day(date(2026, 11, 27))

    assert day.is_session
    assert day.early_close
    assert day.close_utc == utc(2026, 11, 27, 18, 0)
    assert not health.nyse_day(date(2026, 11, 25)).early_close


@pytest.mark.django_db
def test_check_markets_when_holiday_weekday_then_ok_and_names_the_holiday():
    check = health.check_markets(utc(2026, 11, 26, 17, 0))

    assert check.status == "ok"
    assert check.detail == "NYSE closed (holiday, Thu 2026-11-26)"


@pytest.mark.django_db
def test_check_markets_when_open_on_early_close_day_then_warn_with_the_1300_close():
    check = health.check_markets(utc(2026, 12, 24, 16, 0))

    assert check.status == "warn"
    assert "NYSE is open until 13:00 New York (early close)" in check.detail
