"""Benchmark the ML path: training time on the 130k bars and per-bar prediction latency.

Usage: ``.venv/bin/python bench/ml.py [--bars N] [--shared-data DIR]``

- training: ``train_model`` (features, labels, 3 walk-forward folds, HistGradientBoosting +
  sigmoid calibration) on ``ml/BTC-USDT_1m_binance.csv.gz`` of the shared data set
  (``--shared-data`` or ``BENCH_SHARED_DATA``, default ``../shared/data`` beside the
  repository; 130,708 bars), wall time; baseline: the batch feature matrix alone;
- per bar, live path (one bar in, one probability out), p50 / p99 / max over ``--bars``:
  baseline ``FeatureState.update`` (features only), then features + the calibrated
  model's ``predict_proba`` on one row, then ``MlStrategy.decide`` (the whole decision).

Pure: no Django, database or Redis. Nothing is asserted; target p99 < 1 ms per bar.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _support import SHARED_DATA_DEFAULT, SHARED_DATA_ENV, data_dir, require_data  # noqa: E402

DATA = Path("ml") / "BTC-USDT_1m_binance.csv.gz"  # inside the shared data set


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _row(name: str, samples: list[float]) -> None:
    us = [v * 1e6 for v in samples]
    print(
        f"  {name:<38} n={len(us):>6}  p50 {_pct(us, 0.5):7.1f} us  "
        f"p99 {_pct(us, 0.99):7.1f} us  max {max(us):8.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20000, help="bars timed per latency row")
    parser.add_argument(
        "--shared-data",
        type=Path,
        metavar="DIR",
        help=f"the shared data set, for {DATA} "
        f"(default: ${SHARED_DATA_ENV}, else {SHARED_DATA_DEFAULT})",
    )
    args = parser.parse_args()
    shared, _ = data_dir(args.shared_data, SHARED_DATA_ENV, SHARED_DATA_DEFAULT)
    data = shared / DATA
    require_data([data], f"--shared-data DIR or {SHARED_DATA_ENV}")

    from apps.marketdata.domain.csvfile import read_bars
    from apps.ml.domain.features import BarArrays, FeatureState, feature_matrix
    from apps.ml.domain.model import TrainConfig, train_model
    from apps.ml.domain.strategy import MlStrategy

    bars = list(read_bars(data))
    arrays = BarArrays.from_bars(bars)
    ts = [b.ts for b in bars]
    print(f"data: {data}, {len(bars):,} bars")

    t = time.perf_counter()
    feature_matrix(arrays)
    t_feat = time.perf_counter() - t
    t = time.perf_counter()
    result = train_model(arrays, ts, TrainConfig())
    t_train = time.perf_counter() - t
    m = result.heldout_metrics
    print("training")
    print(f"  baseline: batch features, 130k bars   {t_feat:6.2f} s")
    print(f"  train_model (3 folds, hgb + sigmoid)  {t_train:6.2f} s")
    print(
        f"  held-out ECE {m['ece']:.4f} (uncalibrated {m['ece_uncalibrated']:.4f}), "
        f"log loss {m['log_loss']:.4f}, AUC {m['auc']:.4f}"
    )

    sample = bars[-args.bars :]
    predict = result.bundle.predictor()
    print(f"per-bar latency, last {len(sample):,} bars (after a {241}-bar warm-up)")
    for name, make in (
        ("baseline: FeatureState.update", None),
        ("features + predict_proba (1 row)", predict),
    ):
        state = FeatureState()
        for b in bars[-args.bars - 241 : -args.bars]:
            state.update(b)
        samples = []
        for b in sample:
            t0 = time.perf_counter()
            x = state.update(b)
            if make is not None:
                make(x)
            samples.append(time.perf_counter() - t0)
        _row(name, samples)
    strategy = MlStrategy(predict, threshold=0.5, horizon=result.bundle.horizon)
    for b in bars[-args.bars - 241 : -args.bars]:
        strategy.decide(b)
    samples = []
    for b in sample:
        t0 = time.perf_counter()
        strategy.decide(b)
        samples.append(time.perf_counter() - t0)
    _row("MlStrategy.decide (whole decision)", samples)


if __name__ == "__main__":
    main()
