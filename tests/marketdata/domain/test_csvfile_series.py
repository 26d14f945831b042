"""read_bars applies the series rules (future ts, out of range, absurd jump) with file and
line, on its fast path exactly as SeriesValidator would, and real files all pass."""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from apps.marketdata.domain.csvfile import (
    HEADER,
    Rejection,
    instrument_from_path,
    read_bars,
)
from apps.marketdata.domain.validation import SeriesValidator, ValidationConfig
from apps.model.bars import Bar
from tests.paths import SHARED_DATA

NOW = datetime(2024, 6, 1, tzinfo=UTC)
# Every OHLCV bar file of the recorded data (trades and ticks have their own columns).
REAL_FILES = sorted(
    p for p in SHARED_DATA.glob("**/*_*.csv*") if p.parent.name in ("crypto", "equity", "ml")
)


def write(tmp_path: Path, *rows: str, name: str = "BTC-USD_1m_test.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def read(path: Path, now: datetime | None = NOW, **kwargs) -> tuple[list[Bar], list[Rejection]]:
    rejections: list[Rejection] = []
    bars = list(read_bars(path, on_reject=rejections.append, now=now, **kwargs))
    return bars, rejections


def test_read_bars_when_bad_series_rows_then_reason_and_line_and_later_rows_accepted(tmp_path):
    path = write(
        tmp_path,
        "2024-01-01T00:00:00Z,100,101,99,100,5",
        "2030-01-01T00:00:00Z,100,101,99,100,5",  # line 3
        "2024-01-01T00:01:00Z,100,1e400,99,100,5",  # line 4
        "2024-01-01T00:02:00Z,1e8,1e8,1e8,1e8,5",  # line 5: 1,000,000x
        "2024-01-01T00:03:00Z,1e4,1e4,1e4,1e4,5",  # line 6: 100x
        "2024-01-01T00:04:00Z,100,101,99,100,1e400",  # line 7
        "2024-01-01T00:05:00Z,100,101,1e-13,100,5",  # line 8
        "2024-01-01T00:06:00Z,100,101,99,101,5",
        "2024-01-01T00:07:00Z,101,102,100,101,5",
    )

    bars, rejections = read(path)

    assert [(r.line, r.reason) for r in rejections] == [
        (3, "future_timestamp"),
        (4, "out_of_range"),
        (5, "absurd_jump"),
        (6, "absurd_jump"),
        (7, "out_of_range"),
        (8, "out_of_range"),
    ]
    assert all(r.source == str(path) for r in rejections)
    assert rejections[1].raw == "2024-01-01T00:01:00Z,100,1e400,99,100,5"
    assert [b.ts.minute for b in bars] == [0, 6, 7]


def test_read_bars_when_now_not_given_then_the_wall_clock(tmp_path):
    soon = datetime.now(UTC) + timedelta(hours=1)
    path = write(tmp_path, "2024-01-01T00:00:00Z,1,1,1,1,1", f"{soon:%Y-%m-%dT%H:%M:%SZ},1,1,1,1,1")
    rejections: list[Rejection] = []

    bars = list(read_bars(path, on_reject=rejections.append))

    assert len(bars) == 1
    assert [r.reason for r in rejections] == ["future_timestamp"]


def test_read_bars_when_now_naive_then_value_error(tmp_path):
    path = write(tmp_path, "2024-01-01T00:00:00Z,1,1,1,1,1")

    with pytest.raises(ValueError, match="timezone-aware"):
        read_bars(path, now=datetime(2024, 1, 1))  # noqa: DTZ001


def test_read_bars_per_instrument_limit_is_the_one_given(tmp_path):
    path = write(tmp_path, "2024-01-01T00:00:00Z,1,1,1,1,1", "2024-01-01T00:01:00Z,3,3,3,3,1")

    assert len(read(path)[0]) == 2
    bars, rejections = read(path, validation=ValidationConfig(max_move_pct=Decimal(1)))
    assert len(bars) == 1
    assert [(r.line, r.reason) for r in rejections] == [(3, "absurd_jump")]


def random_rows(seed: int, n: int = 3000) -> list[str]:
    """Mostly good bars, with every kind of bad one sprinkled in."""
    rng = random.Random(seed)
    rows, ts, close = [], datetime(2024, 1, 1, tzinfo=UTC), 100.0
    for _ in range(n):
        ts += timedelta(minutes=rng.choice([1, 1, 1, 2, 30]))
        close *= 1 + rng.gauss(0, 0.01)
        o, c = close, close * (1 + rng.gauss(0, 0.005))
        h, lo = (
            max(o, c) * (1 + abs(rng.gauss(0, 0.003))),
            min(o, c) * (1 - abs(rng.gauss(0, 0.003))),
        )
        fields = [f"{ts:%Y-%m-%dT%H:%M:%SZ}", f"{o:.6f}", f"{h:.6f}", f"{lo:.6f}", f"{c:.6f}", "5"]
        kind = rng.random()
        if kind < 0.02:
            fields[1:5] = [f"{x * rng.choice([50, 1e6, 0.01]):.6f}" for x in (o, h, lo, c)]
        elif kind < 0.03:
            fields[2] = rng.choice(["1e400", "Infinity", f"{h * 60:.6f}"])
        elif kind < 0.04:
            fields[0] = rng.choice(["2030-01-01T00:00:00Z", "2023-01-01T00:00:00Z"])
        elif kind < 0.05:
            fields[5] = rng.choice(["-1", "1e400", "NaN"])
        elif kind < 0.06:
            fields[3] = rng.choice(["1e-13", "0", f"{h * 2:.6f}"])
        elif kind < 0.07:
            ts -= timedelta(minutes=rng.choice([0, 1]))
            fields[0] = f"{ts:%Y-%m-%dT%H:%M:%SZ}"
        rows.append(",".join(fields))
    return rows


@pytest.mark.parametrize(
    "config", [ValidationConfig(), ValidationConfig(max_move_pct=Decimal("0.05"))]
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_read_bars_fast_path_decides_exactly_as_series_validator(tmp_path, seed, config):
    rows = random_rows(seed)
    path = write(tmp_path, *rows)
    validator = SeriesValidator(config)
    expected = []
    for line, row in enumerate(rows, start=2):
        ts, *numbers = row.split(",")
        bar = Bar("BTC-USD", datetime.fromisoformat(ts), *map(Decimal, numbers))
        reason = validator.check(bar, now=NOW)
        expected.append((line, reason))

    bars, rejections = read(path, validation=config)

    got = {r.line: r.reason for r in rejections}
    assert [(line, got.get(line)) for line, _ in expected] == expected
    assert len(bars) == sum(1 for _, reason in expected if reason is None)
    assert 50 < len(rejections) < 1000


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_every_real_file_passes_whole_with_the_defaults(path):
    rows = sum(1 for _ in (gzip.open if path.suffix == ".gz" else open)(path, "rt")) - 1

    bars, rejections = read(path, now=None)

    assert rejections == []
    assert len(bars) == rows


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_every_real_file_passes_whole_with_a_volatility_multiple_of_250(path):
    config = ValidationConfig(volatility_multiple=250)

    bars, rejections = read(path, now=None, validation=config)

    assert rejections == []
    assert bars == read(path, now=None)[0]


def test_real_files_are_all_found():
    assert len(REAL_FILES) == 39
    assert {instrument_from_path(p) for p in REAL_FILES} >= {"AIG", "EEM", "BTC-USD", "AAPL"}


@pytest.mark.parametrize("factor", ["100", "1000000", "0.01"])
def test_real_file_with_one_jumped_bar_then_only_that_bar_rejected(tmp_path, factor):
    lines = (SHARED_DATA / "equity" / "AIG_1d.csv").read_text().splitlines()
    at = 2893  # the file line of 2009-07-01, the 1:20 reverse split, is the bar after
    ts, *numbers = lines[at - 2].split(",")
    jumped = ",".join([ts, *(str(Decimal(x) * Decimal(factor)) for x in numbers[:4]), numbers[4]])
    lines[at - 2] = jumped
    path = tmp_path / "AIG_1d.csv"
    path.write_text("\n".join(lines) + "\n")

    bars, rejections = read(path)

    assert [(r.line, r.reason) for r in rejections] == [(at - 1, "absurd_jump")]
    assert len(bars) == len(lines) - 2
