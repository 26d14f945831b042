"""VaR, correlations, drawdown, daily P&L and the equity rules against plain references."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apps.model.time import day_start, parse_day_boundary
from apps.risk.domain.metrics import (
    MonitorThresholds,
    align_daily_closes,
    correlation_matrix,
    daily_pnl_pct,
    drawdown,
    equity_verdict,
    historical_var,
)
from apps.risk.domain.modes import SystemMode

CRASH = Path(__file__).resolve().parents[1] / "data" / "BTC-USDT_1h_binance-2020-03-crash.csv"
SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


def closes_from_csv(path: Path, every: str) -> pd.Series:
    frame = pd.read_csv(path, parse_dates=["timestamp"], dtype={"close": str})
    frame["close"] = frame["close"].map(D)
    return frame.set_index("timestamp")["close"].groupby(pd.Grouper(freq=every)).last().dropna()


def reference_var(values: dict[str, float], closes: dict[str, list[float]], c: float) -> float:
    """The textbook recipe with numpy: revalue holdings under past returns, take the quantile."""
    pnl = np.zeros(len(next(iter(closes.values()))) - 1)
    for symbol, value in values.items():
        series = np.asarray(closes[symbol], dtype=float)
        pnl += value * (series[1:] / series[:-1] - 1)
    ordered = np.sort(pnl)
    k = max(1, math.ceil(len(ordered) * (1 - c) - 1e-9))
    return max(0.0, -ordered[k - 1])


def test_historical_var_matches_numpy_reference_on_real_bars() -> None:
    # Arrange: the hourly closes of the crash as "days" (the method does not care).
    btc = [D(x) for x in closes_from_csv(CRASH, "1h").tolist()]
    holdings = {"BTC-USDT": D("9500.50")}
    closes = {"BTC-USDT": btc}

    # Act
    var95 = historical_var(holdings=holdings, daily_closes=closes, confidence=D("0.95"))
    var99 = historical_var(holdings=holdings, daily_closes=closes, confidence=D("0.99"))

    # Assert
    ref = {"BTC-USDT": [float(x) for x in btc]}
    assert float(var95) == pytest.approx(reference_var({"BTC-USDT": 9500.50}, ref, 0.95), rel=1e-9)
    assert float(var99) == pytest.approx(reference_var({"BTC-USDT": 9500.50}, ref, 0.99), rel=1e-9)
    assert var99 >= var95 > 0


def test_historical_var_of_a_multi_instrument_book_with_a_short() -> None:
    series = {
        p.name.split("_")[0]: closes_from_csv(p, "10min") for p in sorted(SAMPLE.glob("*.csv"))
    }
    days, aligned = align_daily_closes({s: dict(v.items()) for s, v in series.items()})
    holdings = {"BTC-USD": D("5000"), "ETH-USD": D("-2000"), "LTC-USD": D("1500")}

    var95 = historical_var(holdings=holdings, daily_closes=aligned, confidence=D("0.95"))

    ref = reference_var(
        {k: float(v) for k, v in holdings.items()},
        {k: [float(x) for x in v] for k, v in aligned.items()},
        0.95,
    )
    assert len(days) > 100
    assert float(var95) == pytest.approx(ref, rel=1e-9)


def test_historical_var_without_holdings_or_history_is_zero() -> None:
    assert historical_var(holdings={}, daily_closes={}, confidence=D("0.95")) == 0
    assert (
        historical_var(holdings={"X": D(10)}, daily_closes={"X": [D(1)]}, confidence=D("0.95")) == 0
    )


def test_correlation_matrix_matches_pandas() -> None:
    series = {
        p.name.split("_")[0]: closes_from_csv(p, "10min") for p in sorted(SAMPLE.glob("*.csv"))
    }
    _, aligned = align_daily_closes({s: dict(v.items()) for s, v in series.items()})

    instruments, matrix = correlation_matrix(aligned)

    frame = (
        pd.DataFrame({s: [float(x) for x in v] for s, v in aligned.items()}).pct_change().dropna()
    )
    reference = frame[instruments].corr().to_numpy()
    assert instruments == ["BTC-USD", "ETH-USD", "LTC-USD"]
    assert np.allclose(np.array(matrix, dtype=float), reference, atol=1e-12)
    assert matrix[0][0] == 1.0


def test_correlation_of_a_flat_series_is_none() -> None:
    instruments, matrix = correlation_matrix({"A": [D(1), D(1), D(1)], "B": [D(1), D(2), D(3)]})
    assert instruments == ["A", "B"]
    assert matrix[0] == [None, None]
    assert matrix[1][1] == 1.0


def test_align_daily_closes_keeps_common_days_only() -> None:
    d1, d2, d3 = date(2020, 3, 10), date(2020, 3, 11), date(2020, 3, 12)
    days, aligned = align_daily_closes({"A": {d1: D(1), d2: D(2)}, "B": {d2: D(5), d3: D(6)}})
    assert days == [d2]
    assert aligned == {"A": [D(2)], "B": [D(5)]}


def test_drawdown_and_daily_pnl_are_fractions() -> None:
    assert drawdown(D(10000), D(8500)) == D("0.15")
    assert drawdown(D(10000), D(10500)) == 0
    assert drawdown(D(0), D(5)) == 0
    assert daily_pnl_pct(D(10000), D(9700)) == D("-0.03")
    assert daily_pnl_pct(D(0), D(1)) == 0


@pytest.mark.parametrize(
    ("ts", "boundary", "start"),
    [
        (datetime(2020, 3, 12, 10, tzinfo=UTC), "00:00", datetime(2020, 3, 12, tzinfo=UTC)),
        (datetime(2020, 3, 12, 21, tzinfo=UTC), "22:00", datetime(2020, 3, 11, 22, tzinfo=UTC)),
        (datetime(2020, 3, 12, 22, tzinfo=UTC), "22:00", datetime(2020, 3, 12, 22, tzinfo=UTC)),
    ],
)
def test_day_start_with_a_boundary(ts: datetime, boundary: str, start: datetime) -> None:
    assert day_start(ts, parse_day_boundary(boundary)) == start


def test_parse_day_boundary_refuses_garbage() -> None:
    assert parse_day_boundary(" 07:30 ") == time(7, 30)
    with pytest.raises(ValueError, match="HH:MM"):
        parse_day_boundary("7h")


T = MonitorThresholds()
DAY = date(2020, 3, 12)


def verdict(dd: str, daily: str, mode: SystemMode = SystemMode.NORMAL, done: bool = False):  # noqa: ANN201
    return equity_verdict(
        drawdown_pct=D(dd),
        daily_pct=D(daily),
        day=DAY,
        mode=mode,
        thresholds=T,
        daily_pause_done=done,
    )


def test_equity_rules_quiet_inside_the_thresholds() -> None:
    v = verdict("0.10", "-0.02")
    assert v.alerts == ()
    assert v.mode is None


def test_drawdown_over_10_pct_warns() -> None:
    v = verdict("0.1001", "0")
    assert [(a.severity, a.code) for a in v.alerts] == [("warning", "drawdown_warning")]
    assert v.mode is None


def test_drawdown_over_15_pct_kills_unless_already_killed() -> None:
    v = verdict("0.1501", "0")
    assert v.mode is SystemMode.KILL
    assert v.rule == "drawdown"
    assert v.alerts[0].code == "drawdown_kill"
    assert verdict("0.2", "0", mode=SystemMode.KILL).mode is None


def test_daily_loss_warns_below_2_pct_and_pauses_below_3_pct_once_a_day() -> None:
    assert [a.code for a in verdict("0", "-0.0201").alerts] == ["daily_loss_warning:2020-03-12"]
    v = verdict("0", "-0.0301")
    assert v.mode is SystemMode.PAUSE
    assert v.rule == "daily_loss"
    assert [a.code for a in v.alerts] == ["daily_loss_pause:2020-03-12"]
    assert verdict("0", "-0.05", done=True).mode is None
    assert verdict("0", "-0.05", mode=SystemMode.OBSERVATION).mode is None


def test_kill_wins_over_pause() -> None:
    v = verdict("0.2", "-0.2")
    assert v.mode is SystemMode.KILL
    assert {a.code for a in v.alerts} == {"drawdown_kill", "daily_loss_pause:2020-03-12"}


def test_day_start_is_pure_of_timezones() -> None:
    ts = datetime(2020, 3, 12, 0, 0, tzinfo=UTC)
    assert day_start(ts + timedelta(minutes=1), time(0, 0)) == ts
