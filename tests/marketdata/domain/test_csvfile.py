"""read_bars and the file-name helpers, on crafted files and real recorded data."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from apps.marketdata.domain.csvfile import (
    HEADER,
    Rejection,
    instrument_from_path,
    read_bars,
    timeframe_from_path,
)
from apps.model.bars import Bar
from apps.model.errors import MarketDataError
from tests.paths import SHARED_DATA

DATA = SHARED_DATA
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data not available")

GOOD1 = "2024-01-01T00:00:00Z,10,12,9,11,5"
GOOD2 = "2024-01-01T00:01:00Z,11,13,10,12,6"
GOOD3 = "2024-01-01T00:02:00Z,12,14,11,13,7"


def write(tmp_path: Path, *rows: str, name: str = "ETH-BTC_1m_test.csv", header=HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def read_all(path: Path) -> tuple[list[Bar], list[Rejection]]:
    rejections: list[Rejection] = []
    bars = list(read_bars(path, on_reject=rejections.append))
    return bars, rejections


def test_read_bars_when_clean_file_then_decimal_bars_with_utc_open_time(tmp_path):
    path = write(tmp_path, GOOD1, GOOD2)

    bars, rejections = read_all(path)

    assert rejections == []
    assert bars[0] == Bar(
        "ETH-BTC",
        datetime(2024, 1, 1, tzinfo=UTC),
        Decimal(10),
        Decimal(12),
        Decimal(9),
        Decimal(11),
        Decimal(5),
    )
    assert type(bars[0]) is Bar
    assert bars[1].ts == datetime(2024, 1, 1, 0, 1, tzinfo=UTC)
    assert bars[1].ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ("2024-01-01T00:01:00Z,11,13,10,12", "unparseable"),  # 5 columns
        ("2024-01-01T00:01:00Z,11,13,10,12,6,7", "unparseable"),  # 7 columns
        ("2024-01-01T00:01:00Z,11,13,ten,12,6", "unparseable"),  # bad number
        ("2024-01-01T00:01:00Z,11,13,10,,6", "unparseable"),  # empty number
        ("2024-13-01T00:01:00Z,11,13,10,12,6", "unparseable"),  # bad month
        ("yesterday,11,13,10,12,6", "unparseable"),
        ("2024-01-01T00:01:00,11,13,10,12,6", "unparseable"),  # naive timestamp
        ("2024-01-01T00:01:00Z,NaN,13,10,12,6", "nan"),
        ("2024-01-01T00:01:00Z,11,inf,10,12,6", "nan"),
        ("2024-01-01T00:01:00Z,11,13,10,12,Infinity", "nan"),
        ("2024-01-01T00:01:00Z,0,13,10,12,6", "non_positive_price"),
        ("2024-01-01T00:01:00Z,11,13,-10,12,6", "non_positive_price"),
        ("2024-01-01T00:01:00Z,11,9,10,12,6", "high_below_low"),
        ("2024-01-01T00:01:00Z,14,13,10,12,6", "open_outside_range"),
        ("2024-01-01T00:01:00Z,11,13,10,9,6", "close_outside_range"),
        ("2024-01-01T00:01:00Z,11,13,10,12,-6", "negative_volume"),
        ("2024-01-01T00:00:00Z,11,13,10,12,6", "duplicate_timestamp"),
        ("2023-12-31T23:59:00Z,11,13,10,12,6", "out_of_order_timestamp"),
    ],
)
def test_read_bars_when_bad_row_then_rejected_with_reason_and_line(tmp_path, bad_row, reason):
    path = write(tmp_path, GOOD1, bad_row, GOOD3)

    bars, rejections = read_all(path)

    assert rejections == [Rejection(str(path), 3, reason, bad_row)]
    assert [b.ts.minute for b in bars] == [0, 2]


def test_read_bars_when_duplicate_then_later_rows_compare_with_last_accepted(tmp_path):
    rows = [
        GOOD1,
        GOOD2,
        "2024-01-01T00:01:00Z,1,1,1,1,1",  # duplicate of line 3
        "2024-01-01T00:00:30Z,1,1,1,1,1",  # earlier than the last accepted (00:01)
        "2024-01-01T00:05:00Z,1,0.5,1,1,1",  # bad: high < low, not accepted...
        "2024-01-01T00:03:00Z,1,1,1,1,1",  # ...so 00:03 is in order (last accepted 00:01)
    ]
    path = write(tmp_path, *rows)

    bars, rejections = read_all(path)

    assert [(r.line, r.reason) for r in rejections] == [
        (4, "duplicate_timestamp"),
        (5, "out_of_order_timestamp"),
        (6, "high_below_low"),
    ]
    assert [b.ts.minute for b in bars] == [0, 1, 3]


def test_read_bars_when_first_row_bad_then_next_row_has_no_previous(tmp_path):
    path = write(tmp_path, "2024-01-01T00:05:00Z,-1,1,1,1,1", GOOD1)

    bars, rejections = read_all(path)

    assert [r.reason for r in rejections] == ["non_positive_price"]
    assert len(bars) == 1


def test_read_bars_when_exponent_form_then_exact_decimal(tmp_path):
    path = write(tmp_path, "2024-01-01T00:00:00Z,5.33e-05,5.4E-05,5.3e-05,5.33e-05,1.5e+03")

    (bar,), rejections = read_all(path)

    assert rejections == []
    assert bar.open == Decimal("0.0000533")
    assert bar.high == Decimal("0.000054")
    assert bar.volume == Decimal(1500)
    assert str(bar.open) == "0.0000533"


def test_read_bars_keeps_source_precision_exactly(tmp_path):
    path = write(tmp_path, "2024-01-01T00:00:00Z,0.1,0.30000000000000004,0.1,0.2,12.345678901")

    (bar,), _ = read_all(path)

    assert bar.high == Decimal("0.30000000000000004")
    assert bar.volume == Decimal("12.345678901")


def test_read_bars_when_crlf_blank_lines_and_bom_then_tolerated(tmp_path):
    path = tmp_path / "X_1m.csv"
    path.write_bytes(
        ("\ufeff" + HEADER + "\r\n" + GOOD1 + "\r\n\r\n" + GOOD2 + "\r\n\n").encode("utf-8")
    )

    bars, rejections = read_all(path)

    assert rejections == []
    assert [b.volume for b in bars] == [Decimal(5), Decimal(6)]


def test_read_bars_when_offset_timestamp_then_converted_to_utc(tmp_path):
    path = write(tmp_path, "2024-01-01T02:00:00+02:00,10,12,9,11,5")

    (bar,), _ = read_all(path)

    assert bar.ts == datetime(2024, 1, 1, tzinfo=UTC)
    assert bar.ts.utcoffset() == timedelta(0)


def test_read_bars_when_no_on_reject_then_bad_rows_skipped_silently(tmp_path):
    path = write(tmp_path, GOOD1, "garbage", "2024-01-01T00:01:00Z,NaN,1,1,1,1", GOOD3)

    assert len(list(read_bars(path))) == 2


def test_read_bars_instrument_defaults_to_file_name_and_can_be_overridden(tmp_path):
    path = write(tmp_path, GOOD1, name="SOL-USDT_1m_binance.csv")

    assert next(read_bars(path)).instrument == "SOL-USDT"
    assert next(read_bars(path, instrument="SOLUSDT")).instrument == "SOLUSDT"


def test_read_bars_when_gzip_then_read_transparently(tmp_path):
    path = tmp_path / "ETH-BTC_1m.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(f"{HEADER}\n{GOOD1}\nbad\n{GOOD2}\n")

    bars, rejections = read_all(path)

    assert len(bars) == 2
    assert rejections == [Rejection(str(path), 3, "unparseable", "bad")]


def test_read_bars_when_file_missing_then_error_names_file_and_what_to_do(tmp_path):
    path = tmp_path / "nope_1m.csv"

    with pytest.raises(MarketDataError) as info:
        read_bars(path)  # raised at the call, before iteration

    assert str(path) in info.value.message
    assert "not found" in info.value.message
    assert HEADER in info.value.message
    assert info.value.reason == "file_not_found"
    assert info.value.source == str(path)


def test_read_bars_when_path_is_directory_then_market_data_error(tmp_path):
    with pytest.raises(MarketDataError) as info:
        read_bars(tmp_path)

    assert str(tmp_path) in info.value.message
    assert info.value.reason == "unreadable"


def test_read_bars_when_wrong_header_then_error_names_file_found_and_expected(tmp_path):
    path = write(tmp_path, GOOD1, header="date,open,high,low,close,volume")

    with pytest.raises(MarketDataError) as info:
        read_bars(path)

    message = info.value.message
    assert str(path) in message
    assert "date,open,high,low,close,volume" in message
    assert HEADER in message
    assert info.value.reason == "bad_header"
    assert info.value.line == 1


def test_read_bars_when_empty_file_then_bad_header_error(tmp_path):
    path = tmp_path / "X_1m.csv"
    path.write_text("")

    with pytest.raises(MarketDataError, match="empty file"):
        read_bars(path)


def test_read_bars_when_not_gzip_despite_name_then_market_data_error(tmp_path):
    path = tmp_path / "X_1m.csv.gz"
    path.write_text(HEADER + "\n" + GOOD1 + "\n")

    with pytest.raises(MarketDataError) as info:
        read_bars(path)

    assert str(path) in info.value.message


def test_read_bars_when_gzip_truncated_mid_file_then_market_data_error(tmp_path):
    rows = [
        f"2024-01-{d:02d}T{h:02d}:{m:02d}:00Z,10,12,9,11,{d * 10000 + h * 100 + m}"
        for d in range(1, 29)
        for h in range(24)
        for m in range(60)
    ]
    data = gzip.compress(("\n".join([HEADER, *rows]) + "\n").encode())
    path = tmp_path / "X_1m.csv.gz"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(MarketDataError) as info:
        list(read_bars(path))

    assert str(path) in info.value.message
    assert info.value.line is not None
    assert info.value.line > 2


@needs_data
def test_read_bars_real_bittrex_file_all_rows_good():
    path = DATA / "crypto/ETH-BTC_5m_bittrex.csv"

    bars, rejections = read_all(path)

    assert rejections == []
    assert len(bars) == 5760
    assert bars[0].instrument == "ETH-BTC"
    assert bars[0].ts == datetime(2018, 1, 10, 4, 55, tzinfo=UTC)
    assert bars[0].open == Decimal("0.0984")
    assert bars[-1].ts == datetime(2018, 1, 30, 4, 50, tzinfo=UTC)
    assert all(b.ts < n.ts for b, n in pairwise(bars))


@needs_data
def test_read_bars_real_exponent_prices_match_the_text():
    path = DATA / "crypto/NXT-BTC_5m_bittrex.csv"
    lines = path.read_text().splitlines()[1:]

    bars, rejections = read_all(path)

    assert rejections == []
    assert len(bars) == len(lines)
    assert any("e-" in line for line in lines)
    for line, bar in zip(lines, bars, strict=True):
        fields = line.split(",")
        assert bar.low == Decimal(fields[3])


@needs_data
def test_read_bars_real_gzip_file():
    path = DATA / "crypto/BTC-USDT_1h_binance.csv.gz"

    bars, rejections = read_all(path)

    assert rejections == []
    assert len(bars) == 58419
    assert bars[0].instrument == "BTC-USDT"
    assert bars[0].ts == datetime(2017, 8, 17, 4, tzinfo=UTC)
    assert bars[-1].ts == datetime(2024, 4, 21, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "instrument", "timeframe"),
    [
        ("ETH-BTC_5m_bittrex.csv", "ETH-BTC", timedelta(minutes=5)),
        ("/data/crypto/BTC-USDT_1h_binance.csv.gz", "BTC-USDT", timedelta(hours=1)),
        (Path("equity/SPY_1d.csv"), "SPY", timedelta(days=1)),
        ("SPY_1m.csv", "SPY", timedelta(minutes=1)),
        ("X_30s.csv", "X", timedelta(seconds=30)),
        ("X_1w.csv", "X", timedelta(weeks=1)),
        ("XRP-ETH_trades_binance.csv", "XRP-ETH", None),
        ("X_0m.csv", "X", None),
        ("plain.csv", "plain", None),
    ],
)
def test_instrument_and_timeframe_from_path(path, instrument, timeframe):
    assert instrument_from_path(path) == instrument
    assert timeframe_from_path(path) == timeframe
