from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from apps.model.time import ensure_utc, parse_utc

NAIVE = datetime(2024, 1, 1, tzinfo=UTC).replace(tzinfo=None)


def test_ensure_utc_when_naive_then_raises() -> None:
    with pytest.raises(ValueError, match="naive"):
        ensure_utc(NAIVE)


def test_ensure_utc_when_utc_then_returns_same_object() -> None:
    dt = datetime(2024, 1, 1, tzinfo=UTC)

    assert ensure_utc(dt) is dt


def test_ensure_utc_when_other_offset_then_converts() -> None:
    dt = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))

    result = ensure_utc(dt)

    assert result == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05+00:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02 05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("  2024-01-02  ", datetime(2024, 1, 2, tzinfo=UTC)),
        ("1704164645", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1704164645000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1704164645123", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
    ],
)
def test_parse_utc_accepts_iso_and_epoch(text: str, expected: datetime) -> None:
    result = parse_utc(text)

    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "   ", "yesterday", "2024-13-01", "12:00-ish"])
def test_parse_utc_when_garbage_then_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_utc(text)
