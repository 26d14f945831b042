"""Probability quality: ECE, Brier score, log loss and reliability bins.

ECE (expected calibration error) with ``n_bins`` equal-width bins over [0, 1]:
ECE = sum_b (n_b / N) * |mean(p in b) - mean(y in b)|; a probability of exactly 1.0
falls in the last bin. Empty bins contribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BINS = 10


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None  # None for an empty bin
    observed_rate: float | None


def _check(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError("probabilities and outcomes must be 1-D arrays of the same length")
    if len(p) == 0:
        raise ValueError("no predictions to score")
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("probabilities must be within [0, 1]")
    if np.any((y != 0) & (y != 1)):
        raise ValueError("outcomes must be 0 or 1")
    return p, y


def bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def reliability_bins(
    p: np.ndarray, y: np.ndarray, n_bins: int = DEFAULT_BINS
) -> list[ReliabilityBin]:
    p, y = _check(p, y)
    idx = bin_index(p, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    out = []
    for b in range(n_bins):
        c = int(counts[b])
        out.append(
            ReliabilityBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=c,
                mean_predicted=float(sum_p[b] / c) if c else None,
                observed_rate=float(sum_y[b] / c) if c else None,
            )
        )
    return out


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    p, y = _check(p, y)
    idx = bin_index(p, n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    return float(np.sum(np.abs(sum_p - sum_y)) / len(p))


def brier_score(p: np.ndarray, y: np.ndarray) -> float:
    p, y = _check(p, y)
    return float(np.mean((p - y) ** 2))


def log_loss(p: np.ndarray, y: np.ndarray, eps: float = 1e-15) -> float:
    p, y = _check(p, y)
    q = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
