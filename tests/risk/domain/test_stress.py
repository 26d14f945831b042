"""Stress scenario math (pure): statistics of bars, shocks, VaR losses, verdicts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.risk.domain.checks import RiskLimits
from apps.risk.domain.metrics import MonitorThresholds
from apps.risk.domain.stress import (
    Holding,
    Portfolio,
    ShockScenario,
    VarInputs,
    max_drawdown,
    shock_result,
    var_loss_result,
    volatility_ratio,
    worst_bar_drop,
    worst_gap,
    worst_status,
    worst_window_move,
)

D = Decimal
LIMITS = RiskLimits(max_order_notional=D(10**6), max_position_notional=D(10**6))
DAY = date(2027, 1, 2)


def book(*holdings: Holding, cash: str = "1000", peak: str = "0") -> Portfolio:
    return Portfolio("a", D(cash), tuple(holdings), D(peak), LIMITS)


def test_statistics_when_known_series_then_exact_moves():
    closes = [D(100), D(120), D(90), D(110), D(60)]
    assert max_drawdown(closes) == D(60) / D(120) - 1
    assert worst_gap([D(100), D(95), D(130)], [D(100), D(125), D(130)]) == D(95) / D(100) - 1
    assert worst_bar_drop([D(10), D(20)], [D(9), D(15)]) == D("-0.25")
    assert worst_window_move(closes, 2) == D(60) / D(90) - 1
    assert max_drawdown([D(1), D(2), D(3)]) == 0  # only up: no drawdown


def test_statistics_when_bad_input_then_named_error():
    with pytest.raises(ValueError, match="window of 0 bars"):
        worst_window_move([D(1), D(2)], 0)
    with pytest.raises(ValueError, match="calm period has no variance"):
        volatility_ratio([D(1), D(1), D(1)], [D(1), D(2), D(1)])
    with pytest.raises(ValueError, match="needs 2 or more returns"):
        volatility_ratio([D(1), D(2)], [D(1), D(2), D(3)])


def test_shock_when_short_then_gains_on_a_fall():
    result = shock_result(
        portfolio=book(Holding("X-USD", "crypto", D(-2), D(100)), cash="1200"),
        scenario=ShockScenario("s", "S", {"crypto": D("-0.5")}, D(0)),
        fee_rate=D(0),
        thresholds=MonitorThresholds(),
        day=DAY,
    )
    assert (result.pnl, result.equity_after, result.status) == (D(100), D(1100), "ok")


def test_shock_when_equity_wiped_out_then_fail_with_full_drawdown():
    result = shock_result(
        portfolio=book(Holding("X", "equity", D(100), D(100)), cash="-9000"),
        scenario=ShockScenario("s", "S", {"*": D("-0.2")}, D(0)),
        fee_rate=D(0),
        thresholds=MonitorThresholds(),
        day=DAY,
    )
    assert result.equity_after == D(-1000)
    assert (result.status, result.drawdown_after, result.mode) == ("fail", D(1), "kill")


def test_shock_when_asset_class_unknown_and_no_default_then_key_error():
    with pytest.raises(KeyError, match="no move for asset class 'fx'"):
        shock_result(
            portfolio=book(Holding("EURUSD", "fx", D(1), D(1))),
            scenario=ShockScenario("s", "S", {"equity": D("-0.1")}, D(0)),
            fee_rate=D(0),
            thresholds=MonitorThresholds(),
            day=DAY,
        )


def test_var_loss_when_holding_has_no_closes_then_not_applicable():
    result = var_loss_result(
        portfolio=book(Holding("X", "equity", D(1), D(10))),
        key="k",
        title="K",
        inputs=VarInputs(daily_closes={}),
        thresholds=MonitorThresholds(),
        day=DAY,
    )
    assert result.status == "n/a"
    assert "no daily closes for X" in result.note


def test_var_loss_when_few_observations_then_noted_and_correlation_one_adds_standalones():
    closes = {"A": [D(100), D(90), D(99)], "B": [D(50), D(55), D(44)]}
    result = var_loss_result(
        portfolio=book(Holding("A", "equity", D(1), D(100)), Holding("B", "equity", D(2), D(50))),
        key="k",
        title="K",
        inputs=VarInputs(daily_closes=closes),
        thresholds=MonitorThresholds(),
        day=DAY,
    )
    # standalone VaR 99 %: A 100 x -10 % = 10; B 100 x -20 % = 20
    assert result.loss == D(30)
    assert result.extra["observations"] == "2"
    assert "only 2 daily returns" in result.note


def test_worst_status_when_mixed_then_most_severe():
    assert worst_status(["ok", "n/a", "warn"]) == "warn"
    assert worst_status(["warn", "fail"]) == "fail"
    assert worst_status([]) == "ok"
