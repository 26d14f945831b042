"""validate_bar: each rejection reason, check order, and the accepted edge cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.marketdata.domain.validation import REASONS, validate_bar
from apps.model.bars import Bar, make_bar

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bar(o="10", h="12", lo="9", c="11", v="5", ts=T0) -> Bar:
    return Bar("ETH-BTC", ts, Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(v))


def test_validate_bar_when_good_then_none():
    assert validate_bar(bar(), None) is None
    assert validate_bar(bar(), T0 - timedelta(minutes=1)) is None


def test_validate_bar_when_flat_zero_volume_candle_then_accepted():
    assert validate_bar(bar("10", "10", "10", "10", "0"), None) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"o": "NaN"}, "nan"),
        ({"h": "Infinity"}, "nan"),
        ({"lo": "-inf"}, "nan"),
        ({"c": "sNaN"}, "nan"),
        ({"v": "nan"}, "nan"),
        ({"o": "0"}, "non_positive_price"),
        ({"lo": "-1"}, "non_positive_price"),
        ({"o": "0", "h": "0", "lo": "0", "c": "0"}, "non_positive_price"),
        ({"h": "8"}, "high_below_low"),
        ({"o": "13"}, "open_outside_range"),
        ({"o": "8"}, "open_outside_range"),
        ({"c": "12.0001"}, "close_outside_range"),
        ({"c": "8.9999"}, "close_outside_range"),
        ({"v": "-0.001"}, "negative_volume"),
    ],
)
def test_validate_bar_when_bad_field_then_reason(fields, reason):
    assert validate_bar(bar(**fields), None) == reason


def test_validate_bar_when_same_ts_as_previous_then_duplicate():
    assert validate_bar(bar(), T0) == "duplicate_timestamp"


def test_validate_bar_when_earlier_than_previous_then_out_of_order():
    assert validate_bar(bar(), T0 + timedelta(seconds=1)) == "out_of_order_timestamp"


def test_validate_bar_when_several_problems_then_first_in_check_order():
    # NaN wins over a bad price and a duplicate ts
    assert validate_bar(bar(o="NaN", lo="-1"), T0) == "nan"
    # a non-positive price wins over high < low
    assert validate_bar(bar(h="-1"), None) == "non_positive_price"
    # high < low wins over open/close outside the range
    assert validate_bar(bar(o="20", h="5", lo="9", c="1"), None) == "high_below_low"
    # open outside wins over close outside and negative volume
    assert validate_bar(bar(o="20", c="30", v="-1"), None) == "open_outside_range"
    # price problems win over timestamp problems
    assert validate_bar(bar(v="-1"), T0) == "negative_volume"


def test_reasons_are_listed_in_check_order():
    assert REASONS == (
        "unparseable",
        "nan",
        "non_positive_price",
        "out_of_range",
        "high_below_low",
        "open_outside_range",
        "close_outside_range",
        "negative_volume",
        "duplicate_timestamp",
        "out_of_order_timestamp",
        "future_timestamp",
        "absurd_jump",
    )


def test_make_bar_builds_an_ordinary_frozen_bar():
    one = Decimal(1)
    fast = make_bar("X", T0, one, one, one, one, one)
    assert type(fast) is Bar
    assert fast == Bar("X", T0, one, one, one, one, one)
    assert hash(fast) == hash(Bar("X", T0, one, one, one, one, one))
    assert replace(fast, close=Decimal(2)).close == Decimal(2)
    with pytest.raises(AttributeError):
        fast.close = Decimal(3)  # type: ignore[misc]
