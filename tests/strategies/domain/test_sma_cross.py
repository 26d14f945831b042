"""SmaCross: cross detection on hand-made closes, including ties at t-1."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.strategies.domain.base import SignalAction
from apps.strategies.domain.registry import build_strategy, strategy_params
from apps.strategies.domain.sma_cross import SmaCross

ENTER = SignalAction.ENTER_LONG
EXIT = SignalAction.EXIT_LONG
HOLD = SignalAction.HOLD
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Bar:
    """Stand-in with the fields the strategy reads (Bar's shape)."""

    instrument: str
    ts: datetime
    close: Decimal


def _actions(strategy: SmaCross, closes: list[str], instrument: str = "X-Y") -> list[SignalAction]:
    return [
        strategy.decide(_Bar(instrument, T0 + timedelta(minutes=i), Decimal(c)))  # type: ignore[arg-type]
        for i, c in enumerate(closes)
    ]


def _reference(closes: list[str], fast: int, slow: int) -> list[SignalAction]:
    """Textbook definition with exact fractions, window by window."""
    from fractions import Fraction

    values = [Fraction(c) for c in closes]
    out: list[SignalAction] = []
    for t in range(len(values)):
        if t < max(fast, slow):
            out.append(HOLD)
            continue

        def sma(n: int, end: int) -> Fraction:
            return sum(values[end - n + 1 : end + 1], Fraction(0)) / n

        f1, s1 = sma(fast, t), sma(slow, t)
        f0, s0 = sma(fast, t - 1), sma(slow, t - 1)
        if f1 > s1 and f0 <= s0:
            out.append(ENTER)
        elif f1 < s1 and f0 >= s0:
            out.append(EXIT)
        else:
            out.append(HOLD)
    return out


def test_decide_when_fewer_than_slow_plus_one_closes_then_holds() -> None:
    # Arrange
    strategy = SmaCross(fast=1, slow=3)
    # Act: a steep rise, but SMA3 at t-1 needs 4 closes in all
    actions = _actions(strategy, ["1", "1", "1"])
    # Assert
    assert actions == [HOLD, HOLD, HOLD]


def test_decide_when_fast_rises_through_slow_then_enters_once() -> None:
    # fast=1 (the close), slow=3. t=3: fast 1 vs slow 1 (tie) ; t=4: 4 vs 2 -> cross above
    strategy = SmaCross(fast=1, slow=3)
    actions = _actions(strategy, ["1", "1", "1", "1", "4", "5", "6"])
    assert actions == [HOLD, HOLD, HOLD, HOLD, ENTER, HOLD, HOLD]


def test_decide_when_fast_equals_slow_at_t_minus_1_then_cross_above_counts() -> None:
    # fast == slow at t-1 (flat prices), fast > slow at t -> ENTER (<= at t-1).
    strategy = SmaCross(fast=2, slow=3)
    actions = _actions(strategy, ["2", "2", "2", "2", "3"])
    assert actions == [HOLD, HOLD, HOLD, HOLD, ENTER]


def test_decide_when_fast_equals_slow_at_t_minus_1_then_cross_below_counts() -> None:
    strategy = SmaCross(fast=2, slow=3)
    actions = _actions(strategy, ["2", "2", "2", "2", "1"])
    assert actions == [HOLD, HOLD, HOLD, HOLD, EXIT]


def test_decide_when_fast_touches_slow_and_returns_then_no_signal() -> None:
    # fast > slow, then fast == slow at t (not a cross: needs fast_t < slow_t), then back above.
    # fast=1, slow=2: t=2 close 3 vs SMA2 2.5 (above); t=3 close 3 vs 3 (tie); t=4 close 4 above.
    strategy = SmaCross(fast=1, slow=2)
    actions = _actions(strategy, ["1", "2", "3", "3", "4"])
    # t=2: prev (t=1) fast 2 > slow 1.5 -> already above -> HOLD; t=3 tie -> HOLD;
    # t=4: fast 4 > slow 3.5 and prev tie (<=) -> ENTER again
    assert actions == [HOLD, HOLD, HOLD, HOLD, ENTER]


def test_decide_when_tie_follows_below_then_tie_is_not_a_cross() -> None:
    # below at t-1, equal at t: neither cross; then below again: prev tie (>=) -> EXIT.
    strategy = SmaCross(fast=1, slow=2)
    actions = _actions(strategy, ["3", "2", "2", "1"])
    assert actions == [HOLD, HOLD, HOLD, EXIT]


def test_decide_when_decimal_ties_are_exact_then_no_rounding_cross() -> None:
    # SMA3 of (0.1, 0.2, 0.3) is exactly 0.2 = SMA1 of 0.2 only with exact arithmetic;
    # a float mean would give 0.20000000000000004.
    strategy = SmaCross(fast=1, slow=3)
    actions = _actions(strategy, ["0.3", "0.1", "0.2", "0.3", "0.2", "0.1"])
    assert actions == _reference(["0.3", "0.1", "0.2", "0.3", "0.2", "0.1"], 1, 3)


@pytest.mark.parametrize(("fast", "slow"), [(1, 2), (2, 5), (3, 3), (5, 2), (4, 9)])
def test_decide_when_random_walk_then_matches_textbook_definition(fast: int, slow: int) -> None:
    import random

    rng = random.Random(fast * 100 + slow)
    price = 100
    closes = []
    for _ in range(400):
        price = max(1, price + rng.choice([-2, -1, 0, 0, 1, 2]))
        closes.append(str(Decimal(price) / 8))
    strategy = SmaCross(fast=fast, slow=slow)
    assert _actions(strategy, closes) == _reference(closes, fast, slow)


def test_decide_when_two_instruments_interleave_then_state_is_per_instrument() -> None:
    closes_a = ["1", "1", "1", "1", "4"]
    closes_b = ["5", "5", "5", "5", "1"]
    strategy = SmaCross(fast=1, slow=3)
    out_a, out_b = [], []
    for i, (a, b) in enumerate(zip(closes_a, closes_b, strict=True)):
        ts = T0 + timedelta(minutes=i)
        out_a.append(strategy.decide(_Bar("A", ts, Decimal(a))))  # type: ignore[arg-type]
        out_b.append(strategy.decide(_Bar("B", ts, Decimal(b))))  # type: ignore[arg-type]
    assert out_a[-1] == ENTER
    assert out_b[-1] == EXIT


def test_on_bar_when_cross_then_signal_carries_close_and_smas() -> None:
    strategy = SmaCross(fast=1, slow=3)
    _actions(strategy, ["1", "1", "1", "1"])
    signal = strategy.on_bar(_Bar("X-Y", T0, Decimal("4")))  # type: ignore[arg-type]
    assert signal.action is ENTER
    assert signal.price == Decimal("4")
    assert signal.inputs["fast_sma"] == "4"
    assert signal.inputs["slow_sma"] == "2"


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_init_when_window_not_positive_int_then_raises(value: object) -> None:
    with pytest.raises(ValueError, match="fast must be a positive integer"):
        SmaCross(fast=value, slow=3)  # type: ignore[arg-type]


def test_build_strategy_when_string_params_then_converts() -> None:
    strategy = build_strategy("sma_cross", {"fast": "10", "slow": "30"})
    assert strategy.params == {"fast": 10, "slow": 30}
    assert strategy_params("sma_cross") == ("fast", "slow")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, "unknown strategy 'nope'; choose one of: ml, sma_cross"),
        ("sma_cross", {"fast": "1", "slow": "2", "x": "3"}, "unknown parameter 'x'"),
        ("sma_cross", {"fast": "1"}, "needs parameter 'slow'"),
        ("sma_cross", {"fast": "a", "slow": "2"}, "'fast' of strategy 'sma_cross' must be an int"),
        ("sma_cross", {"fast": "0", "slow": "2"}, "fast must be a positive integer"),
    ],
)
def test_build_strategy_when_bad_input_then_value_error(
    name: str, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_strategy(name, params)
