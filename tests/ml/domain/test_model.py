"""Training on the real BTC-USDT 1m data, calibration, model files and bad input."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from apps.ml.domain.errors import ModelIntegrityError, TrainingDataError
from apps.ml.domain.features import BarArrays
from apps.ml.domain.model import TrainConfig, load_bundle, save_bundle, train_model


def test_train_when_real_data_then_heldout_ece_below_005_and_below_uncalibrated(trained):
    m = trained.heldout_metrics
    print(
        f"held-out ECE calibrated {m['ece']:.4f} uncalibrated {m['ece_uncalibrated']:.4f} "
        f"log loss {m['log_loss']:.4f} AUC {m['auc']:.4f}"
    )
    assert m["ece"] < 0.05
    assert m["ece"] < m["ece_uncalibrated"]
    assert m["ece_bins"] == 10
    assert m["auc"] > 0.55
    # walk-forward: test windows after train + embargo, in order
    for f in trained.folds:
        assert f.fold.test_start - f.fold.train_end == trained.config.embargo
    assert trained.heldout_start > trained.train_end


def test_load_when_file_tampered_then_refused(trained, tmp_path):
    path = tmp_path / "m.joblib"
    sha = save_bundle(trained.bundle, path)
    assert load_bundle(path, sha).feature_names == trained.bundle.feature_names
    assert load_bundle(path).horizon == trained.bundle.horizon  # sidecar sha256
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="modified or corrupted"):
        load_bundle(path, sha)
    with pytest.raises(ModelIntegrityError, match="modified or corrupted"):
        load_bundle(path)
    with pytest.raises(ModelIntegrityError, match="not found"):
        load_bundle(tmp_path / "nope.joblib", sha)


def test_train_when_too_little_data_then_clear_error(ml_bars):
    bars = ml_bars[:3000]
    with pytest.raises(TrainingDataError, match="too little data to train: 3000 bars"):
        train_model(BarArrays.from_bars(bars), [b.ts for b in bars], TrainConfig())


def test_train_when_bars_missing_then_clear_error(ml_bars):
    bars = ml_bars[:30000] + ml_bars[30010:60000]
    cfg = TrainConfig(test_size=5000, n_folds=2)
    with pytest.raises(TrainingDataError, match="missing bars: 1 gaps"):
        train_model(BarArrays.from_bars(bars), [b.ts for b in bars], cfg)


def test_train_when_feature_constant_then_clear_error(ml_bars):
    bars = ml_bars[:40000]
    arrays = BarArrays.from_bars(bars)
    arrays = replace(arrays, volume=np.full(len(bars), 5.0))
    cfg = TrainConfig(test_size=5000, n_folds=2)
    with pytest.raises(TrainingDataError, match="constant feature"):
        train_model(arrays, [b.ts for b in bars], cfg)


def test_gap_positions_when_step_differs_then_listed(ml_bars):
    from apps.ml.domain.features import gap_positions

    ts = [b.ts for b in ml_bars[:10]]
    assert gap_positions(ts, timedelta(minutes=1)) == []
    assert gap_positions(ts[:3] + ts[5:], timedelta(minutes=1)) == [3]


def test_walk_forward_when_too_short_then_error_and_embargo_respected():
    from apps.ml.domain.walkforward import walk_forward_splits

    folds = walk_forward_splits(1000, n_folds=3, test_size=100, embargo=10, min_train=200)
    assert [f.test_start for f in folds] == [700, 800, 900]
    assert all(f.train_end == f.test_start - 10 and f.train_start == 0 for f in folds)
    rolling = walk_forward_splits(
        1000, n_folds=2, test_size=100, embargo=5, min_train=100, mode="rolling", train_size=300
    )
    assert rolling[0].train_start == 495
    assert rolling[0].train_end == 795
    with pytest.raises(ValueError, match="too little data"):
        walk_forward_splits(300, n_folds=3, test_size=100, embargo=10, min_train=200)


def test_live_predictor_when_compiled_then_equals_sklearn_predict_proba(trained, ml_bars):
    from apps.ml.domain.features import feature_matrix
    from apps.ml.domain.model import FastHgbSigmoid

    x = feature_matrix(BarArrays.from_bars(ml_bars[-3000:]))[-2000:]
    predict = trained.bundle.predictor()
    assert isinstance(predict, FastHgbSigmoid)
    reference = trained.bundle.predict_proba(x)
    live = np.array([predict(row) for row in x])
    assert np.max(np.abs(live - reference)) < 1e-12
