"""ECE, Brier and PSI against independent references written plainly here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.ml.domain.calibration import brier_score, expected_calibration_error, reliability_bins
from apps.ml.domain.drift import EPS, psi, psi_reference


def reference_ece(p, y, n_bins):
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(len(p)) if lo <= p[i] < hi or (b == n_bins - 1 and p[i] == 1.0)]
        if not members:
            continue
        conf = sum(p[i] for i in members) / len(members)
        acc = sum(y[i] for i in members) / len(members)
        total += len(members) / len(p) * abs(conf - acc)
    return total


def reference_psi(train, recent, n_bins=10):
    s = sorted(train)
    edges = []
    for k in range(1, n_bins):  # numpy's default (linear) quantile, by hand
        pos = (len(s) - 1) * k / n_bins
        lo = math.floor(pos)
        edges.append(s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (pos - lo))
    edges = sorted(set(edges))

    def frac(values):
        counts = [0] * (len(edges) + 1)
        for v in values:
            counts[sum(1 for e in edges if v >= e)] += 1
        return [max(c / len(values), EPS) for c in counts]

    e, a = frac(train), frac(recent)
    return sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))


def test_ece_and_brier_when_computed_on_model_predictions_then_match_plain_reference(
    trained, ml_bars
):
    # Arrange: real held-out predictions of the trained model
    from apps.ml.domain.features import BarArrays, feature_matrix
    from apps.ml.domain.labels import label_exceeds_cost

    start, end = trained.heldout_index
    arrays = BarArrays.from_bars(ml_bars[start - 300 : end])
    x = feature_matrix(arrays)[300:]
    y = label_exceeds_cost(arrays.close, trained.bundle.horizon, trained.bundle.cost)[300:]
    ok = ~np.isnan(y)
    p = trained.bundle.predict_proba(x[ok])
    y = y[ok]
    # Act / Assert
    for n_bins in (10, 15):
        assert expected_calibration_error(p, y, n_bins) == pytest.approx(
            reference_ece(list(p), list(y), n_bins), abs=1e-12
        )
    assert brier_score(p, y) == pytest.approx(
        sum((pi - yi) ** 2 for pi, yi in zip(p, y, strict=True)) / len(p), abs=1e-12
    )


def test_ece_when_edge_probabilities_then_one_goes_to_last_bin():
    p = np.array([0.0, 1.0, 1.0, 0.95, 0.05])
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    assert expected_calibration_error(p, y, 10) == pytest.approx(
        reference_ece(list(p), list(y), 10)
    )
    bins = reliability_bins(p, y, 10)
    assert bins[-1].count == 3
    assert bins[5].mean_predicted is None


def test_psi_when_computed_then_matches_plain_reference():
    rng = np.random.default_rng(7)
    train = rng.normal(size=3000)
    recent = rng.normal(0.3, 1.2, size=800)
    ref = psi_reference(train)
    assert psi(ref, recent) == pytest.approx(reference_psi(list(train), list(recent)), abs=1e-12)


def test_psi_when_feature_shifted_then_flagged_drifted(trained, ml_bars):
    # Arrange: real features of the training window vs the same feature shifted by 1 std
    from apps.ml.domain.drift import DRIFT_THRESHOLD, PsiReference
    from apps.ml.domain.features import FEATURE_NAMES, BarArrays, feature_matrix

    x = feature_matrix(BarArrays.from_bars(ml_bars[-20000:]))[-5000:]
    i = FEATURE_NAMES.index("ret_15")
    ref = PsiReference.from_json(trained.drift_reference["ret_15"])
    # Act
    stable = psi(ref, x[:, i])
    shifted = psi(ref, x[:, i] + np.std(x[:, i]))
    # Assert
    assert stable < DRIFT_THRESHOLD < shifted
