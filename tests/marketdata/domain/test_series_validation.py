"""SeriesValidator and ValidationConfig: future timestamps, out-of-range values, absurd
jumps; one bad bar never condemns the good bars after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.marketdata.domain.validation import (
    PRICE_MAX,
    SeriesValidator,
    ValidationConfig,
    validation_config_from,
    validation_configs,
    validation_settings_problems,
)
from apps.model.bars import Bar

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def bar(i: int, c: str = "100", *, h: str | None = None, lo: str | None = None, o=None, v="5"):
    close = Decimal(c)
    return Bar(
        "BTC-USD",
        T0 + i * MIN,
        Decimal(o) if o else close,
        Decimal(h) if h else close,
        Decimal(lo) if lo else close,
        close,
        Decimal(v),
    )


def run(validator: SeriesValidator, bars, now=None) -> list[str | None]:
    return [validator.check(b, now=now) for b in bars]


def test_future_bar_rejected_and_the_real_bars_after_it_accepted():
    v = SeriesValidator()
    now = T0 + 10 * MIN
    future = Bar("BTC-USD", datetime(2030, 1, 1, tzinfo=UTC), *[Decimal(100)] * 4, Decimal(1))

    reasons = run(v, [bar(0), future, bar(1), bar(2)], now=now)

    assert reasons == [None, "future_timestamp", None, None]
    assert v.last_ts == bar(2).ts


def test_future_skew_is_the_margin_and_now_none_skips_the_rule():
    config = ValidationConfig(max_future_skew=timedelta(seconds=5))
    now = T0 - timedelta(seconds=5)

    assert SeriesValidator(config).check(bar(0), now=now) is None
    assert SeriesValidator(config).check(bar(0), now=now - timedelta(microseconds=1)) == (
        "future_timestamp"
    )
    assert SeriesValidator(config).check(bar(0), now=None) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"c": "1e400"},  # the measured case: passed, then failed inside COPY
        {"c": "10000000000000000"},  # 1e16: 17 integer digits, numeric(28,12) holds 16
        {"c": "100", "lo": "1e-13"},  # would be stored as 0
        {"c": "100", "v": "1e19"},  # numeric(30,12) volume holds 18 integer digits
        {"c": "100", "v": "1e400"},
    ],
)
def test_value_the_table_cannot_hold_rejected_out_of_range_without_exception(kwargs):
    v = SeriesValidator()

    assert run(v, [bar(0), bar(1, **kwargs), bar(2)]) == [None, "out_of_range", None]


def test_largest_storable_price_accepted():
    top = str(PRICE_MAX)
    v = SeriesValidator(ValidationConfig(max_move_pct=Decimal("1e20")))

    assert v.check(bar(0, "1")) is None
    assert v.check(bar(1, top, lo="1")) is None


@pytest.mark.parametrize("close", ["100000000", "10000", "1", "0.0001"])  # 1e6x, 100x up/down
def test_absurd_jump_rejected_and_later_good_bars_accepted(close):
    v = SeriesValidator()

    reasons = run(v, [bar(0), bar(1, close), bar(2, "101"), bar(3, "99")])

    assert reasons == [None, "absurd_jump", None, None]
    assert v.last_close == Decimal(99)


def test_absurd_jump_limit_is_max_move_pct_either_way():
    config = ValidationConfig(max_move_pct=Decimal(40))  # a factor of 41

    assert SeriesValidator(config).check(bar(0)) is None
    assert run(SeriesValidator(config), [bar(0), bar(1, "4100")]) == [None, None]
    assert run(SeriesValidator(config), [bar(0), bar(1, "4100.01")]) == [None, "absurd_jump"]
    assert run(SeriesValidator(config), [bar(0, "4100"), bar(1, "100")]) == [None, None]
    assert run(SeriesValidator(config), [bar(0, "4100"), bar(1, "99.99")]) == [None, "absurd_jump"]


def test_high_spike_rejected_but_a_wick_towards_zero_accepted():
    # Real files have one-bar wicks to near zero (Coinbase BTC-USD 2017-04-15: low 0.06).
    v = SeriesValidator()

    reasons = run(v, [bar(0, "1173"), bar(1, "1178", h="117300"), bar(2, "1178", lo="0.06")])

    assert reasons == [None, "absurd_jump", None]


def test_real_reverse_split_passes_by_default():
    # AIG 2009-06-30 close 1.13, 2009-07-01 (1:20 reverse split) 19.7/22.96/17.55/18.08.
    v = SeriesValidator()
    split = Bar("AIG", T0 + MIN, *map(Decimal, ("19.7", "22.96", "17.55", "18.08")), Decimal(1))

    assert run(v, [bar(0, "1.13"), split]) == [None, None]


def noisy(n: int, start: int = 0) -> list[Bar]:
    # closes alternate 100 / 101: every bar's size is ln(1.01) ~ 1 %
    return [bar(start + i, "101" if i % 2 else "100") for i in range(n)]


def test_volatility_rule_rejects_a_move_many_times_the_recent_size_then_accepts_normal_bars():
    config = ValidationConfig(volatility_multiple=10, volatility_window=20, volatility_min_bars=5)
    v = SeriesValidator(config)
    history = noisy(10)

    assert run(v, history) == [None] * 10
    # ln(1.2) = 18 % > 10 x 1 %; ln(1.05) = 5 % is fine; so is the range rule
    assert v.check(bar(10, "121")) == "absurd_jump"
    assert v.check(bar(10, "100", h="125")) == "absurd_jump"
    assert v.check(bar(10, "105")) is None
    assert v.check(bar(11, "101")) is None


def test_volatility_rule_waits_for_min_bars_and_allows_more_after_a_gap():
    config = ValidationConfig(volatility_multiple=10, volatility_window=20, volatility_min_bars=5)
    early = SeriesValidator(config)
    assert run(early, [*noisy(3), bar(3, "121")]) == [None, None, None, None]

    v = SeriesValidator(config)
    run(v, noisy(10))
    # 18 % after 100 minutes of silence: the limit grows with sqrt(100) = 10
    assert v.check(bar(110, "121")) is None


def test_volatility_rule_off_by_default_and_flat_history_does_not_condemn():
    assert ValidationConfig().volatility_multiple is None
    assert run(SeriesValidator(), [*noisy(40), bar(40, "130")])[-1] is None
    config = ValidationConfig(volatility_multiple=10, volatility_min_bars=5)
    flat = [bar(i, "100") for i in range(10)]
    assert run(SeriesValidator(config), [*flat, bar(10, "130")])[-1] is None


def test_one_rejected_bar_changes_no_state():
    v = SeriesValidator(ValidationConfig(volatility_multiple=10, volatility_min_bars=5))
    run(v, noisy(10))
    before = (v.last_ts, v.last_close, list(v._sizes), v._step)

    assert v.check(bar(10, "1e400")) == "out_of_range"
    assert v.check(bar(10, "10000")) == "absurd_jump"
    assert v.check(bar(9, "100")) == "duplicate_timestamp"

    assert (v.last_ts, v.last_close, list(v._sizes), v._step) == before


def test_last_ts_given_then_older_bars_are_out_of_order():
    v = SeriesValidator(last_ts=T0 + MIN)

    assert run(v, [bar(0), bar(1), bar(2)]) == [
        "out_of_order_timestamp",
        "duplicate_timestamp",
        None,
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_move_pct": Decimal(0)}, "max_move_pct"),
        ({"max_move_pct": Decimal("Infinity")}, "max_move_pct"),
        ({"max_future_skew": timedelta(seconds=-1)}, "max_future_skew"),
        ({"volatility_multiple": 0}, "volatility_multiple"),
        ({"volatility_multiple": float("nan")}, "volatility_multiple"),
        ({"volatility_window": 0}, "volatility_window"),
        ({"volatility_window": 10, "volatility_min_bars": 11}, "volatility_min_bars"),
    ],
)
def test_config_when_bad_value_then_value_error_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ValidationConfig(**kwargs)


def test_config_from_settings_values():
    config = validation_config_from(
        {"max_future_skew": 2, "max_move_pct": "0.5", "volatility_multiple": 250}
    )

    assert config == ValidationConfig(
        max_future_skew=timedelta(seconds=2),
        max_move_pct=Decimal("0.5"),
        volatility_multiple=250.0,
    )


def test_configs_per_symbol_override_the_default():
    configs = validation_configs(
        {"default": {"max_move_pct": 10}, "aig": {"volatility_multiple": 300}, "BTC-USD": {}}
    )

    assert configs["default"].max_move_pct == Decimal(10)
    assert configs["AIG"] == ValidationConfig(max_move_pct=Decimal(10), volatility_multiple=300.0)
    assert configs["BTC-USD"] == configs["default"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ([], "must be a mapping"),
        ({"default": {"max_move": 1}}, "entry 'default': unknown key(s) max_move"),
        ({"AIG": {"max_move_pct": "lots"}}, "entry 'AIG': max_move_pct='lots' is not valid"),
        ({"AIG": {"max_move_pct": -1}}, "entry 'AIG': max_move_pct must be a positive"),
        ({"AIG": {"volatility_window": True}}, "volatility_window=True is not valid"),
        ({"AIG": 5}, "entry 'AIG' must be a mapping"),
        ({"aig": {}, "AIG": {}}, "symbol AIG is given twice"),
        ({"default": {"max_future_skew": -3}}, "max_future_skew=-3 is not valid"),
    ],
)
def test_settings_problems_name_the_entry_and_the_fix(setting, expected):
    problems = validation_settings_problems(setting)

    assert len(problems) == 1
    assert expected in problems[0]
    with pytest.raises(ValueError, match="entry|mapping"):
        validation_configs(setting)
