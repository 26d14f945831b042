"""import_bars, backtest and /metrics with the series rules: 1e400 and absurd jumps are
rejected with file and line (never a crash inside COPY), the good rows are stored, the
limits come per instrument from MARKETDATA_VALIDATION, and rejections are exported by
feed and reason."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from prometheus_client.parser import text_string_to_metric_families

from apps.marketdata.config import validation_config_for
from apps.marketdata.domain.validation import ValidationConfig
from apps.marketdata.models import Bar, FeedStatus
from apps.marketdata.services import feed_status_update

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = (
    "2018-04-04T00:00:00Z,100,101,99,100,5\n"
    "2018-04-04T00:01:00Z,100,1e400,99,100,5\n"  # line 3: out of range (was a COPY crash)
    "2030-01-01T00:00:00Z,100,101,99,100,5\n"  # line 4: future
    "2018-04-04T00:02:00Z,1e4,1e4,1e4,1e4,5\n"  # line 5: 100x
    "2018-04-04T00:03:00Z,100,101,99,101,5\n"
    "2018-04-04T00:04:00Z,101,102,100,101,5\n"
)


def csv_file(tmp_path: Path, name: str = "ETH-USD_1m_test.csv", rows: str = ROWS) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + rows)
    return path


def test_import_bars_when_1e400_future_and_jump_rows_then_file_line_and_good_rows_stored(
    tmp_path: Path, capsys
) -> None:
    path = csv_file(tmp_path)

    call_command("import_bars", str(path), "--feed", "test-import")

    out, err = capsys.readouterr()
    assert f"{path}:3: rejected (out_of_range)" in err
    assert f"{path}:4: rejected (future_timestamp)" in err
    assert f"{path}:5: rejected (absurd_jump)" in err
    assert f"{path}: 3 good bars (3 new), 3 rejected" in out
    stored = list(Bar.objects.order_by("ts").values_list("ts__minute", "close"))
    assert stored == [(0, Decimal(100)), (3, Decimal(101)), (4, Decimal(101))]
    status = FeedStatus.objects.get(feed="test-import")
    assert status.rejections == {"out_of_range": 1, "future_timestamp": 1, "absurd_jump": 1}


def test_import_bars_limits_come_from_the_instruments_setting(
    tmp_path: Path, settings, capsys
) -> None:
    settings.MARKETDATA_VALIDATION = {
        "default": {"max_move_pct": 40},
        "eth-usd": {"max_move_pct": 1000},
    }
    eth = csv_file(tmp_path)
    ltc = csv_file(tmp_path, "LTC-USD_1m_test.csv")

    call_command("import_bars", str(eth), str(ltc), "--feed", "test-import")

    err = capsys.readouterr().err
    assert f"{eth}:5: rejected" not in err  # 100x is within ETH-USD's 1001x
    assert f"{ltc}:5: rejected (absurd_jump)" in err
    assert Bar.objects.filter(instrument__symbol="ETH-USD").count() == 4
    assert Bar.objects.filter(instrument__symbol="LTC-USD").count() == 3


def test_validation_config_for_when_symbol_absent_then_the_default(settings) -> None:
    settings.MARKETDATA_VALIDATION = {"default": {"max_move_pct": 7}, "AIG": {"max_move_pct": 60}}

    assert validation_config_for("aig ") == ValidationConfig(max_move_pct=Decimal(60))
    assert validation_config_for("SPY") == ValidationConfig(max_move_pct=Decimal(7))
    settings.MARKETDATA_VALIDATION = {}
    assert validation_config_for("SPY") == ValidationConfig()


def test_backtest_when_1e400_row_then_refused_with_file_and_line(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "ETH-USD_1m_x.csv")
    out = tmp_path / "trades.csv"
    args = ["--strategy", "sma_cross", "--data", str(path), "--trades-out", str(out)]

    with pytest.raises(CommandError) as info:
        call_command(
            "backtest",
            *args,
            "--param",
            "fast=2",
            "--param",
            "slow=3",
            "--stake",
            "100",
            "--fee",
            "0.001",
        )

    assert f"{path} line 3: out_of_range" in str(info.value)
    assert not out.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{not json", "MARKETDATA_VALIDATION is not valid JSON"),
        ('{"AIG": {"max_move_pct": -1}}', "entry 'AIG': max_move_pct must be a positive"),
        ('{"default": {"max_jump": 3}}', "unknown key(s) max_jump"),
    ],
)
def test_settings_when_bad_marketdata_validation_then_start_refused_naming_it(
    value: str, expected: str
) -> None:
    env = {**os.environ, "MARKETDATA_VALIDATION": value}

    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert proc.returncode != 0
    assert expected in proc.stderr


def test_metrics_when_rejections_recorded_then_counted_by_feed_and_reason(client) -> None:
    feed_status_update(feed="kraken", last_bar_ts=None, rejected={"absurd_jump": 2, "nan": 1})
    feed_status_update(feed="kraken", last_bar_ts=None, rejected={"absurd_jump": 1})
    feed_status_update(feed="import", last_bar_ts=None, rejected={"out_of_range": 4})

    body = client.get("/metrics").content.decode()

    samples = {
        (s.labels["feed"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(body)
        if family.name == "marketdata_bars_rejected"
        for s in family.samples
        if s.name == "marketdata_bars_rejected_total"
    }
    assert samples == {
        ("kraken", "absurd_jump"): 3.0,
        ("kraken", "nan"): 1.0,
        ("import", "out_of_range"): 4.0,
    }
    assert "# TYPE marketdata_bars_rejected_total counter" in body
