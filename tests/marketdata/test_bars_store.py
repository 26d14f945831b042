from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.marketdata.domain.csvfile import read_bars
from apps.marketdata.models import Bar, FeedStatus
from apps.marketdata.services import bars_store

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "LTC-USD_1m_coinbase.csv"
HEADER = "timestamp,open,high,low,close,volume\n"


def test_bars_store_when_file_imported_twice_then_rows_stored_once_exactly() -> None:
    bars = list(read_bars(SAMPLE))

    first = bars_store(bars=bars, timeframe="1m")
    second = bars_store(bars=bars, timeframe="1m")

    assert first == len(bars) == 2447
    assert second == 0
    assert Bar.objects.count() == 2447
    stored = Bar.objects.filter(instrument__symbol="LTC-USD").order_by("ts").first()
    assert (stored.ts, stored.open, stored.close, stored.volume) == (
        bars[0].ts,
        bars[0].open,
        bars[0].close,
        bars[0].volume,
    )


def test_bars_store_when_exponent_prices_then_exact_decimals() -> None:
    bars = list(read_bars(ROOT / "tests" / "marketdata" / "data" / "XRP-BTC_5m_test.csv"))

    bars_store(bars=bars, timeframe="5m")

    assert Bar.objects.get().close == D("0.0000533")


def test_import_bars_when_bad_rows_then_rejected_counted_with_file_and_line(
    tmp_path: Path, capsys
) -> None:
    path = tmp_path / "ETH-USD_1m_test.csv"
    path.write_text(
        HEADER
        + "2018-04-04T00:00:00Z,100,101,99,100,5\n"
        + "2018-04-04T00:01:00Z,100,99,101,100,5\n"  # line 3: high < low
        + "2018-04-04T00:02:00Z,NaN,101,99,100,5\n"  # line 4: nan
        + "2018-04-03T23:59:00Z,100,101,99,100,5\n"  # line 5: out of order
        + "2018-04-04T00:03:00Z,100,101,99,100,-1\n"  # line 6: negative volume
        + "2018-04-04T00:04:00Z,100,101,99,100,5\n"
        + "2018-04-04T00:04:00Z,100,101,99,100,5\n"  # line 8: duplicate
    )

    call_command("import_bars", str(path), "--feed", "test-import")

    err = capsys.readouterr().err
    assert f"{path}:3: rejected (high_below_low)" in err
    assert f"{path}:4: rejected (nan)" in err
    assert f"{path}:5: rejected (out_of_order_timestamp)" in err
    assert f"{path}:6: rejected (negative_volume)" in err
    assert f"{path}:8: rejected (duplicate_timestamp)" in err
    assert Bar.objects.count() == 2
    status = FeedStatus.objects.get(feed="test-import")
    assert status.bars_accepted == 2
    assert status.bars_rejected == 5
    assert status.rejections == {
        "high_below_low": 1,
        "nan": 1,
        "out_of_order_timestamp": 1,
        "negative_volume": 1,
        "duplicate_timestamp": 1,
    }


def test_import_bars_when_file_missing_then_command_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not found"):
        call_command("import_bars", str(tmp_path / "NOPE_1m.csv"))
    assert not Bar.objects.exists()


def test_bars_table_when_timescaledb_absent_then_brin_index_on_ts() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        timescale = cursor.fetchone() is not None
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'marketdata_bar' "
            "AND indexname = 'marketdata_bar_ts_brin'"
        )
        row = cursor.fetchone()

    if timescale:  # the hypertable partitions on ts instead
        cursor = connection.cursor()
        cursor.execute(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'marketdata_bar'"
        )
        assert cursor.fetchone() is not None
    else:
        assert row is not None
        assert "USING brin (ts)" in row[0]
