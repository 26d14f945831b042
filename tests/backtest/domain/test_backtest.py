"""run_backtest: trade-by-trade against an independent pandas reference, plus edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from apps.backtest.domain.backtest import run_backtest
from apps.marketdata.domain.csvfile import read_bars
from apps.model.accounting import max_drawdown
from apps.model.bars import Bar
from apps.model.values import Instrument, Side
from apps.risk.domain.checks import RiskLimits
from apps.strategies.domain.base import Signal, SignalAction
from apps.strategies.domain.sma_cross import SmaCross
from tests.paths import SHARED_DATA

DATA = SHARED_DATA / "crypto"
STAKE = Decimal(100)
FEE = Decimal("0.001")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)


def _reference_trades(path: Path, fast: int, slow: int, stake: float, fee: float) -> list[dict]:
    """The issue's semantics in plain pandas, written independently of the runner.

    Closes are scaled to integer satoshis (all files have <= 8 decimals), so the rolling
    sums are exact integers in float64 and "mean_fast > mean_slow" is compared exactly
    as sum_fast * slow > sum_slow * fast (plain float means can tie-break wrongly).
    Prices, quantities and P&L are floats.
    """
    df = pd.read_csv(path, dtype={"close": str})
    df["close_f"] = df["close"].astype(float)
    sats = df["close"].map(lambda s: int(Decimal(s).scaleb(8))).astype("int64")
    fast_sum, slow_sum = sats.rolling(fast).sum(), sats.rolling(slow).sum()
    diff = fast_sum * slow - slow_sum * fast  # sign of SMA_fast - SMA_slow; NaN early
    up = (diff > 0) & (diff.shift() <= 0)
    down = (diff < 0) & (diff.shift() >= 0)
    trades: list[dict] = []
    holding, pending = None, None
    for i in range(len(df)):
        if pending == "buy":
            price = df.open[i]
            qty = stake / price
            holding = {
                "entry_time": df.timestamp[i],
                "entry_price": price,
                "quantity": qty,
                "entry_fee": fee * qty * price,
            }
        elif pending == "sell":
            price = df.open[i]
            q = holding["quantity"]
            exit_fee = fee * q * price
            trades.append(
                {
                    **holding,
                    "exit_time": df.timestamp[i],
                    "exit_price": price,
                    "exit_fee": exit_fee,
                    "pnl": q * price
                    - exit_fee
                    - (q * holding["entry_price"] + holding["entry_fee"]),
                    "closed_at_end": False,
                }
            )
            holding = None
        pending = None
        if i == len(df) - 1:
            break
        if up[i] and holding is None:
            pending = "buy"
        elif down[i] and holding is not None:
            pending = "sell"
    if holding is not None:
        last = len(df) - 1
        price, q = df.close_f[last], holding["quantity"]
        exit_fee = fee * q * price
        trades.append(
            {
                **holding,
                "exit_time": df.timestamp[last],
                "exit_price": price,
                "exit_fee": exit_fee,
                "pnl": q * price - exit_fee - (q * holding["entry_price"] + holding["entry_fee"]),
                "closed_at_end": True,
            }
        )
    return trades


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def _assert_close(actual: Decimal, expected: float, what: str) -> None:
    assert float(actual) == pytest.approx(expected, rel=1e-12, abs=1e-12), what


@pytest.mark.parametrize(
    "name",
    [
        "ETH-BTC_5m_bittrex.csv",
        "LTC-BTC_5m_bittrex.csv",
        "XLM-BTC_5m_bittrex.csv",  # exponent notation, and exact SMA ties
    ],
)
def test_run_backtest_when_sma_cross_on_recorded_file_then_matches_reference(name: str) -> None:
    # Arrange
    path = DATA / name
    expected = _reference_trades(path, 10, 30, 100.0, 0.001)
    # Act
    result = run_backtest(
        read_bars(path), lambda: SmaCross(fast=10, slow=30), stake=STAKE, fee_rate=FEE
    )
    # Assert
    assert len(result.trades) == len(expected) > 50
    for i, (got, exp) in enumerate(zip(result.trades, expected, strict=True)):
        assert _iso(got.entry_time) == exp["entry_time"], i
        assert _iso(got.exit_time) == exp["exit_time"], i
        assert got.closed_at_end is exp["closed_at_end"], i
        _assert_close(got.entry_price, exp["entry_price"], f"entry_price {i}")
        _assert_close(got.exit_price, exp["exit_price"], f"exit_price {i}")
        _assert_close(got.quantity, exp["quantity"], f"quantity {i}")
        _assert_close(got.entry_fee, exp["entry_fee"], f"entry_fee {i}")
        _assert_close(got.exit_fee, exp["exit_fee"], f"exit_fee {i}")
        _assert_close(got.pnl, exp["pnl"], f"pnl {i}")
        # Exact identities of the Decimal path.
        assert got.quantity == STAKE / got.entry_price
        assert got.pnl == got.quantity * got.exit_price - got.exit_fee - (
            got.quantity * got.entry_price + got.entry_fee
        )
    summary = result.summary
    assert summary.trades == len(expected)
    assert summary.wins == sum(1 for t in expected if t["pnl"] > 0)
    assert summary.losses == sum(1 for t in expected if t["pnl"] < 0)
    _assert_close(summary.pnl, sum(t["pnl"] for t in expected), "total pnl")
    _assert_close(summary.fees, sum(t["entry_fee"] + t["exit_fee"] for t in expected), "total fees")
    # Cash and the sum of trade P&L are both Decimal at 28 digits: equal up to rounding.
    assert abs(summary.final_equity - (summary.capital + summary.pnl)) < Decimal("1e-20")


def test_run_backtest_when_three_files_then_each_instrument_trades_independently() -> None:
    names = ["ETH-BTC", "LTC-BTC", "XLM-BTC"]
    paths = {n: DATA / f"{n}_5m_bittrex.csv" for n in names}
    single = {
        n: run_backtest(read_bars(p), lambda: SmaCross(10, 30), stake=STAKE, fee_rate=FEE)
        for n, p in paths.items()
    }
    merged = run_backtest(
        {n: read_bars(p) for n, p in paths.items()},
        lambda: SmaCross(10, 30),
        stake=STAKE,
        fee_rate=FEE,
    )
    for n in names:
        assert [t for t in merged.trades if t.instrument == n] == list(single[n].trades)
    assert merged.summary.bars == sum(r.summary.bars for r in single.values())
    assert merged.summary.pnl == sum(r.summary.pnl for r in single.values())
    exit_times = [t.exit_time for t in merged.trades]
    assert exit_times == sorted(exit_times)


# -- scripted strategies on hand-made bars -------------------------------------------------


class _Scripted:
    """Emits the given action at the given bar index of each instrument, HOLD otherwise."""

    name = "scripted"

    def __init__(self, script: dict[str, dict[int, SignalAction]]) -> None:
        self.params: dict[str, int] = {}
        self.script = script
        self.seen: dict[str, int] = {}

    def decide(self, bar: Bar) -> SignalAction:
        i = self.seen.get(bar.instrument, 0)
        self.seen[bar.instrument] = i + 1
        return self.script.get(bar.instrument, {}).get(i, SignalAction.HOLD)

    def signal_for(self, bar: Bar, action: SignalAction) -> Signal:
        return Signal(bar.instrument, bar.ts, action, bar.close)

    def on_bar(self, bar: Bar) -> Signal:
        return self.signal_for(bar, self.decide(bar))


def _bars(instrument: str, rows: list[tuple[str, str]], start: datetime = T0) -> list[Bar]:
    """Bars from (open, close) pairs; high/low span both."""
    out = []
    for i, (o, c) in enumerate(rows):
        op, cl = Decimal(o), Decimal(c)
        out.append(
            Bar(instrument, start + i * STEP, op, max(op, cl), min(op, cl), cl, Decimal(1000))
        )
    return out


ENTER, EXIT = SignalAction.ENTER_LONG, SignalAction.EXIT_LONG


def test_run_backtest_when_position_open_at_end_then_closed_at_last_close() -> None:
    # Arrange: enter at bar 1's close -> fills at bar 2's open (10); data ends at bar 4.
    bars = _bars("A-B", [("8", "8"), ("9", "9"), ("10", "11"), ("11", "12"), ("12", "13")])
    strategy = _Scripted({"A-B": {1: ENTER}})
    # Act
    result = run_backtest(bars, lambda: strategy, stake=STAKE, fee_rate=FEE)
    # Assert
    (trade,) = result.trades
    assert trade.closed_at_end is True
    assert trade.entry_time == bars[2].ts
    assert trade.entry_price == Decimal(10)
    assert trade.quantity == Decimal(10)
    assert trade.exit_time == bars[4].ts
    assert trade.exit_price == Decimal(13)  # last bar's close, not its open
    assert trade.entry_fee == Decimal("0.1")
    assert trade.exit_fee == Decimal("0.13")
    assert trade.pnl == Decimal(130) - Decimal("0.13") - (Decimal(100) + Decimal("0.1"))
    assert result.summary.closed_at_end == 1
    assert result.summary.final_equity == Decimal(10000) + trade.pnl


def test_run_backtest_when_signal_on_last_bar_then_no_order() -> None:
    bars = _bars("A-B", [("8", "8"), ("9", "9"), ("10", "11")])
    result = run_backtest(bars, lambda: _Scripted({"A-B": {2: ENTER}}), stake=STAKE, fee_rate=FEE)
    assert result.trades == ()
    assert result.fills == ()
    assert result.summary.signals == 1
    assert result.summary.final_equity == Decimal(10000)


def test_run_backtest_when_exit_signal_on_last_bar_then_closed_at_end_at_close() -> None:
    bars = _bars("A-B", [("8", "8"), ("10", "9"), ("10", "11")])
    result = run_backtest(
        bars, lambda: _Scripted({"A-B": {0: ENTER, 2: EXIT}}), stake=STAKE, fee_rate=FEE
    )
    (trade,) = result.trades
    assert trade.closed_at_end is True
    assert trade.exit_price == Decimal(11)


def test_run_backtest_when_enter_while_long_or_exit_while_flat_then_ignored() -> None:
    bars = _bars("A-B", [("10", "10")] * 8)
    script = {"A-B": {0: EXIT, 1: ENTER, 2: ENTER, 3: ENTER, 4: EXIT, 5: EXIT}}
    result = run_backtest(bars, lambda: _Scripted(script), stake=STAKE, fee_rate=FEE)
    (trade,) = result.trades
    assert trade.entry_time == bars[2].ts
    assert trade.exit_time == bars[5].ts
    assert [f.side for f in result.fills] == [Side.BUY, Side.SELL]


def test_run_backtest_when_entry_and_exit_fill_at_same_timestamp_then_entry_first() -> None:
    # A exits and B enters at the open of bar 2 (same ts); A comes first in the stream.
    a = _bars("A-B", [("10", "10"), ("10", "10"), ("12", "12"), ("12", "12")])
    b = _bars("C-B", [("5", "5"), ("5", "5"), ("6", "6"), ("6", "6")])
    script = {"A-B": {0: ENTER, 1: EXIT}, "C-B": {1: ENTER}}
    result = run_backtest(
        {"A-B": a, "C-B": b}, lambda: _Scripted(script), stake=STAKE, fee_rate=FEE
    )
    sides = [(f.instrument, f.side, f.ts) for f in result.fills]
    assert sides[:3] == [
        ("A-B", Side.BUY, a[1].ts),
        ("C-B", Side.BUY, b[2].ts),
        ("A-B", Side.SELL, a[2].ts),
    ]
    assert [t.instrument for t in result.trades] == ["A-B", "C-B"]
    assert result.trades[1].closed_at_end is True


def test_run_backtest_when_lot_size_then_quantity_rounded_down() -> None:
    bars = _bars("A-B", [("3", "3"), ("3", "3"), ("3", "3")])
    instrument = Instrument.from_symbol("A-B", lot_size=Decimal("0.1"))
    result = run_backtest(
        bars,
        lambda: _Scripted({"A-B": {0: ENTER}}),
        stake=STAKE,
        fee_rate=FEE,
        instruments={"A-B": instrument},
    )
    assert result.trades[0].quantity == Decimal("33.3")


def test_run_backtest_when_no_lot_size_then_full_precision_quantity() -> None:
    bars = _bars("A-B", [("3", "3"), ("3", "3"), ("3", "3")])
    result = run_backtest(bars, lambda: _Scripted({"A-B": {0: ENTER}}), stake=STAKE, fee_rate=FEE)
    assert result.trades[0].quantity == Decimal("33.33333333333333333333333333")


def test_run_backtest_when_risk_check_denies_then_recorded_and_no_trade() -> None:
    bars = _bars("A-B", [("10", "10")] * 4)
    limits = RiskLimits(max_order_notional=Decimal(50), max_position_notional=Decimal(1000))
    result = run_backtest(
        bars,
        lambda: _Scripted({"A-B": {0: ENTER}}),
        stake=STAKE,
        fee_rate=FEE,
        limits=limits,
    )
    assert result.trades == ()
    (denial,) = result.denials
    assert denial.side is Side.BUY
    assert denial.reason.startswith("max_order_notional: ")
    assert result.summary.denied == 1


def test_run_backtest_when_equity_recorded_then_drawdown_matches_accounting() -> None:
    rows = [
        ("10", "10"),
        ("10", "10"),
        ("10", "9"),
        ("9", "12"),
        ("12", "8"),
        ("8", "8"),
        ("8", "11"),
        ("11", "11"),
    ]
    bars = _bars("A-B", rows)
    result = run_backtest(
        bars,
        lambda: _Scripted({"A-B": {0: ENTER, 5: EXIT}}),
        stake=STAKE,
        fee_rate=FEE,
        record_equity=True,
    )
    equities = [p.equity for p in result.equity_curve]
    assert result.summary.max_drawdown == max_drawdown(equities) > 0
    # entry at 10 (qty 10, fee 0.1) -> marks 9, 12, 8, 8; exit at bar 6's open (8).
    assert equities[:6] == [
        Decimal(10000),
        Decimal("9999.9"),
        Decimal("9989.9"),
        Decimal("10019.9"),
        Decimal("9979.9"),
        Decimal("9979.9"),
    ]
    assert equities[-1] == result.summary.final_equity == Decimal("9979.82")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stake": Decimal(-1), "fee_rate": FEE}, "stake must be positive"),
        ({"stake": STAKE, "fee_rate": Decimal("-0.1")}, "fee rate must be >= 0"),
        ({"stake": STAKE, "fee_rate": FEE, "capital": Decimal(0)}, "capital must be positive"),
    ],
)
def test_run_backtest_when_bad_amounts_then_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_backtest([], lambda: SmaCross(1, 2), **kwargs)
