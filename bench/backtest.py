"""Benchmark the event-driven backtest (``apps.backtest.domain.backtest.run_backtest``).

Usage: ``.venv/bin/python bench/backtest.py [--repeat N] [--no-command] [--shared-data DIR]``

Data: the shared data set (``--shared-data`` or ``BENCH_SHARED_DATA``, default
``../shared/data`` beside the repository): ``crypto/{ETH,LTC,XLM}-BTC_5m_bittrex.csv`` and
``ml/BTC-USDT_1m_binance.csv.gz``; the bench stops with an error when a file is missing.

For each data set it prints bars/s and wall time (best of N) for

- ``read``: the baseline, a bare ``read_bars`` pass over the same files (parse +
  validate + build ``Bar``s, no strategy);
- ``backtest``: ``run_backtest`` with ``sma_cross`` fast=10 slow=30, stake 100, fee 0.001,
  through the full path (reader, strategy, pre-trade check, orders, paper matcher,
  ledger), reading the files as part of the timed run;
- ``backtest, preloaded``: the same on bars already in memory (the engine's own cost);
- ``pandas``: a plain vectorised pandas reference (read_csv + rolling means + cross
  masks), for scale;

and the peak Python heap (``tracemalloc``, measured in a separate, untimed run because
tracing slows the interpreter) plus the process max RSS. With ``--command`` (default on)
it also times the whole ``manage.py backtest`` command on the three-file set in a
subprocess (interpreter + Django start-up included). Nothing is asserted: compare the
figures with the baseline printed next to them. Targets (2-core machine): >= 200,000
bars/s through the full path on the long series; the three-file command < 1.5 s.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from decimal import Decimal
from operator import attrgetter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _support import SHARED_DATA_DEFAULT, SHARED_DATA_ENV, data_dir, require_data  # noqa: E402

from apps.backtest.domain.backtest import run_backtest  # noqa: E402
from apps.marketdata.domain.csvfile import instrument_from_path, read_bars  # noqa: E402
from apps.strategies.domain.sma_cross import SmaCross  # noqa: E402

# Inside the shared data set.
THREE = [Path("crypto") / f"{n}-BTC_5m_bittrex.csv" for n in ("ETH", "LTC", "XLM")]
LONG = [Path("ml") / "BTC-USDT_1m_binance.csv.gz"]
STAKE, FEE = Decimal(100), Decimal("0.001")


def _sources(paths: list[Path]) -> dict[str, Iterable]:
    return {instrument_from_path(p): read_bars(p) for p in paths}


def bare_read(paths: list[Path]) -> int:
    streams = [read_bars(p) for p in paths]
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=attrgetter("ts"))
    n = 0
    for _ in merged:
        n += 1
    return n


def backtest(paths: list[Path]) -> int:
    result = run_backtest(_sources(paths), lambda: SmaCross(10, 30), stake=STAKE, fee_rate=FEE)
    return result.summary.bars


def make_preloaded(paths: list[Path]) -> Callable[[list[Path]], int]:
    bars = {instrument_from_path(p): list(read_bars(p)) for p in paths}

    def run(_: list[Path]) -> int:
        result = run_backtest(bars, lambda: SmaCross(10, 30), stake=STAKE, fee_rate=FEE)
        return result.summary.bars

    return run


def pandas_reference(paths: list[Path]) -> int:
    import pandas as pd

    n = 0
    for p in paths:
        df = pd.read_csv(p)
        fast, slow = df.close.rolling(10).mean(), df.close.rolling(30).mean()
        above = fast > slow
        _ = (above & ~above.shift(fill_value=True)).sum(), (~above & above.shift()).sum()
        n += len(df)
    return n


def timed(fn: Callable[[list[Path]], int], paths: list[Path], repeat: int) -> tuple[int, float]:
    best = float("inf")
    n = 0
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        n = fn(paths)
        best = min(best, time.perf_counter() - t0)
    return n, best


def peak_heap(fn: Callable[[list[Path]], int], paths: list[Path]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn(paths)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def command_wall(three: list[Path], repeat: int) -> float | None:
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable,
            str(REPO / "manage.py"),
            "backtest",
            "--strategy",
            "sma_cross",
            "--param",
            "fast=10",
            "--param",
            "slow=30",
            "--stake",
            "100",
            "--fee",
            "0.001",
            "--trades-out",
            str(Path(tmp) / "trades.csv"),
        ]
        for p in three:
            args += ["--data", str(p)]
        env = {**os.environ, "ENVIRONMENT": os.environ.get("ENVIRONMENT", "test")}
        for _ in range(repeat):
            t0 = time.perf_counter()
            proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, check=False)
            elapsed = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"  command failed ({proc.returncode}): {proc.stderr.decode()[-300:]}")
                return None
            best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-command", action="store_true")
    parser.add_argument(
        "--shared-data",
        type=Path,
        metavar="DIR",
        help=f"the shared data set (default: ${SHARED_DATA_ENV}, else {SHARED_DATA_DEFAULT})",
    )
    opts = parser.parse_args()
    shared, _ = data_dir(opts.shared_data, SHARED_DATA_ENV, SHARED_DATA_DEFAULT)
    three, long = [shared / p for p in THREE], [shared / p for p in LONG]
    require_data(three + long, f"--shared-data DIR or {SHARED_DATA_ENV}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {opts.repeat}")
    print(f"data: {shared}")
    for label, paths in (
        ("three files ETH/LTC/XLM-BTC 5m", three),
        ("long series BTC-USDT 1m (.csv.gz)", long),
    ):
        print(f"\n{label}:")
        rows = [
            ("read (baseline)", bare_read),
            ("backtest", backtest),
            ("backtest, preloaded", make_preloaded(paths)),
            ("pandas reference", pandas_reference),
        ]
        base_rate = None
        for name, fn in rows:
            n, secs = timed(fn, paths, opts.repeat)
            rate = n / secs
            base_rate = base_rate or rate
            print(
                f"  {name:<22} {n:>7} bars  {secs * 1000:8.1f} ms  {rate:>10,.0f} bars/s"
                f"  ({rate / base_rate:4.2f}x read)"
            )
        for name, fn in (("read (baseline)", bare_read), ("backtest", backtest)):
            print(f"  peak heap {name:<17} {peak_heap(fn, paths) / 2**20:8.1f} MiB (tracemalloc)")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess max RSS (incl. preloaded bars and pandas): {maxrss:.0f} MiB")
    if not opts.no_command:
        wall = command_wall(three, opts.repeat)
        if wall is not None:
            print(f"manage.py backtest on the three files (whole command): {wall:.3f} s wall")


if __name__ == "__main__":
    main()
