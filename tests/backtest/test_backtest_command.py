"""`manage.py backtest` end to end, in a subprocess (real exit codes, no database needed)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.paths import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
DATA = SHARED_DATA / "crypto"
ETH = DATA / "ETH-BTC_5m_bittrex.csv"
COLUMNS = "instrument,entry_time,exit_time,entry_price,exit_price,quantity,entry_fee,exit_fee,pnl"


def _backtest(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVIRONMENT": "test"}
    # No database or Redis: point them somewhere unreachable to prove they are not used.
    env["DATABASE_URL"] = "postgres://nobody:nothing@127.0.0.1:9/none"
    env["REDIS_URL"] = "redis://127.0.0.1:9/0"
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "backtest", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _good_args(out: Path, *data: Path) -> list[str | Path]:
    args: list[str | Path] = ["--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=30"]
    for path in data or (ETH,):
        args += ["--data", path]
    return [*args, "--stake", "100", "--fee", "0.001", "--trades-out", out, "--no-progress"]


def test_backtest_when_three_files_then_summary_and_trades_csv(tmp_path: Path) -> None:
    # Arrange
    out = tmp_path / "trades.csv"
    files = [DATA / f"{n}_5m_bittrex.csv" for n in ("ETH-BTC", "LTC-BTC", "XLM-BTC")]
    # Act
    proc = _backtest(*_good_args(out, *files))
    # Assert
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == COLUMNS
    rows = list(csv.DictReader(lines))
    assert {r["instrument"] for r in rows} == {"ETH-BTC", "LTC-BTC", "XLM-BTC"}
    assert rows[0]["entry_time"].endswith("Z")
    pnl = sum(Decimal(r["pnl"]) for r in rows)
    assert f"trades        {len(rows)}" in proc.stdout
    assert f"total P&L     {pnl:.8f} BTC" in proc.stdout
    for label in ("wins", "losses", "total P&L %", "fees", "max drawdown"):
        assert label in proc.stdout
    assert "closed at end of data" in proc.stdout


def test_backtest_when_help_then_states_semantics() -> None:
    proc = _backtest("--help")
    assert proc.returncode == 0
    for phrase in (
        "NEXT bar's open",
        "last bar produces no order",
        "stake / fill price",
        "entry fills are processed before exit fills",
        "closed at its instrument's",
    ):
        assert phrase in proc.stdout


def _bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "BAD-BTC_5m_x.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2018-01-10T04:55:00Z,1,2,0.5,1.5,10\n"
        "2018-01-10T05:00:00Z,1,oops,0.5,1.5,10\n"
    )
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_file", "market data file not found"),
        ("unknown_strategy", "unknown strategy 'nope'"),
        ("unknown_param", "unknown parameter 'zzz'"),
        ("negative_stake", "--stake must be a positive amount"),
        ("negative_fee", "--fee must be a fee rate"),
        ("malformed_csv", "malformed row in"),
        ("bad_header", "bad header in market data file"),
    ],
)
def test_backtest_when_bad_input_then_exit_2_one_line_nothing_written(
    tmp_path: Path, case: str, expected: str
) -> None:
    # Arrange
    out = tmp_path / "trades.csv"
    args = [str(a) for a in _good_args(out)]
    if case == "missing_file":
        args[args.index(str(ETH))] = str(tmp_path / "NOPE-BTC_5m.csv")
    elif case == "unknown_strategy":
        args[args.index("sma_cross")] = "nope"
    elif case == "unknown_param":
        args += ["--param", "zzz=1"]
    elif case == "negative_stake":
        args[args.index("100")] = "-100"
    elif case == "negative_fee":
        args[args.index("0.001")] = "-0.001"
    elif case == "malformed_csv":
        args[args.index(str(ETH))] = str(_bad_csv(tmp_path))
    elif case == "bad_header":
        args[args.index(str(ETH))] = str(REPO / "manage.py")
    # Act
    proc = _backtest(*args)
    # Assert
    assert proc.returncode == 2
    assert proc.stdout == ""
    error_lines = proc.stderr.strip().splitlines()
    assert len(error_lines) == 1, proc.stderr
    assert expected in error_lines[0]
    assert list(tmp_path.glob("*trades*")) == []


def test_backtest_when_malformed_row_and_skip_bad_rows_then_counted(tmp_path: Path) -> None:
    out = tmp_path / "trades.csv"
    args = [str(a) for a in _good_args(out)]
    args[args.index(str(ETH))] = str(_bad_csv(tmp_path))
    proc = _backtest(*args, "--skip-bad-rows")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 bad rows (BAD-BTC_5m_x.csv: 1)" in proc.stdout
    assert out.read_text().splitlines() == [COLUMNS]


def test_backtest_when_position_open_at_end_then_closed_at_last_close(tmp_path: Path) -> None:
    # Arrange: flat then a steady rise: fast SMA crosses above and never comes back.
    rows = ["timestamp,open,high,low,close,volume"]
    closes = [Decimal(10)] * 5 + [Decimal(10 + i) for i in range(1, 6)]
    for i, close in enumerate(closes):
        rows.append(f"2024-01-01T00:{i:02d}:00Z,{close},{close},{close},{close},5")
    data = tmp_path / "UP-USD_1m_test.csv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "trades.csv"
    # Act
    proc = _backtest(
        "--strategy",
        "sma_cross",
        "--param",
        "fast=1",
        "--param",
        "slow=3",
        "--data",
        data,
        "--stake",
        "100",
        "--fee",
        "0.001",
        "--trades-out",
        out,
        "--no-progress",
    )
    # Assert
    assert proc.returncode == 0, proc.stderr
    (trade,) = list(csv.DictReader(out.read_text().splitlines()))
    # cross above at bar 5 (close 11 vs SMA3 10.33); fills at bar 6's open (12)
    assert trade["entry_time"] == "2024-01-01T00:06:00Z"
    assert Decimal(trade["entry_price"]) == 12
    assert trade["exit_time"] == "2024-01-01T00:09:00Z"
    assert Decimal(trade["exit_price"]) == 15
    assert "1 position closed at end of data" in proc.stdout
