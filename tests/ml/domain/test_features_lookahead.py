"""No look-ahead: features, predictions and decisions at t ignore every bar after t."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest

from apps.ml.domain.features import WINDOW, BarArrays, FeatureState, feature_matrix
from apps.ml.domain.strategy import MlStrategy


def _decisions(bars, predictor, horizon):
    strategy = MlStrategy(predictor, threshold=0.3, horizon=horizon)
    return [(strategy.decide(b), strategy.probability(b.instrument)) for b in bars]


def test_features_when_bars_after_t_removed_or_altered_then_identical(ml_bars, trained):
    # Arrange
    bars = ml_bars[50000:53000]
    t = 2000
    full = feature_matrix(BarArrays.from_bars(bars))
    cut = feature_matrix(BarArrays.from_bars(bars[: t + 1]))
    altered_bars = bars[: t + 1] + [
        replace(b, close=b.close * 3, high=b.high * 3, volume=b.volume * 50) for b in bars[t + 1 :]
    ]
    altered = feature_matrix(BarArrays.from_bars(altered_bars))
    # Assert: every row up to t is bit-identical
    assert np.array_equal(full[: t + 1], cut, equal_nan=True)
    assert np.array_equal(full[: t + 1], altered[: t + 1], equal_nan=True)
    assert not np.array_equal(full[t + 1 :], altered[t + 1 :], equal_nan=True)
    # predictions at t identical too
    pred = trained.bundle.predictor()
    assert pred(full[t]) == pred(cut[t]) == pred(altered[t])
    # decisions (the ML strategy, same code as backtest and live) up to t identical
    horizon = trained.bundle.horizon
    a = _decisions(bars, pred, horizon)[: t + 1]
    b = _decisions(bars[: t + 1], pred, horizon)
    c = _decisions(altered_bars, pred, horizon)[: t + 1]
    assert a == b == c
    assert any(action.value != "hold" for action, _ in a)


def test_incremental_features_when_fed_bar_by_bar_then_identical_to_batch(ml_bars):
    bars = ml_bars[:1500]
    batch = feature_matrix(BarArrays.from_bars(bars))
    state = FeatureState()
    for i, bar in enumerate(bars):
        live = state.update(bar)
        if i < WINDOW - 1:
            assert live is None
        else:
            assert np.array_equal(live, batch[i])


def test_feature_state_when_bar_missing_then_restarts_warm_up(ml_bars):
    bars = ml_bars[: WINDOW + 10]
    state = FeatureState()
    for bar in bars[: WINDOW + 2]:
        state.update(bar)
    assert state.ready
    assert state.update(bars[WINDOW + 5]) is None  # 3 bars missing
    assert not state.ready


def test_stake_multiplier_when_probability_rises_then_scales_up_to_cap():
    from apps.ml.domain.strategy import stake_multiplier

    assert stake_multiplier(0.4, 0.5, 2.0) == Decimal(0)
    assert stake_multiplier(0.5, 0.5, 2.0) == Decimal(1)
    assert stake_multiplier(0.75, 0.5, 2.0) == Decimal("1.5")
    assert stake_multiplier(1.0, 0.5, 2.0) == Decimal(2)
    with pytest.raises(ValueError, match="threshold"):
        MlStrategy(lambda x: 0.5, threshold=0, horizon=1)
