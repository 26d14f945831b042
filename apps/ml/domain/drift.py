"""Feature drift: population stability index (PSI) against the training window.

Bins are the training distribution's deciles (inner edges; the outer bins are open),
so each holds about 10 % of the training rows. With e_i the training fraction and a_i
the recent fraction in bin i (both floored at ``EPS`` so an empty bin stays finite):
PSI = sum_i (a_i - e_i) * ln(a_i / e_i). Usual reading: < 0.1 stable, 0.1-0.25 some
shift, > 0.25 drifted (``DRIFT_THRESHOLD``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-4
DEFAULT_BINS = 10
DRIFT_THRESHOLD = 0.25


@dataclass(frozen=True, slots=True)
class PsiReference:
    """One feature's training distribution: inner bin edges and each bin's fraction."""

    edges: tuple[float, ...]
    fractions: tuple[float, ...]

    def to_json(self) -> dict[str, list[float]]:
        return {"edges": list(self.edges), "fractions": list(self.fractions)}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> PsiReference:
        return cls(tuple(data["edges"]), tuple(data["fractions"]))


def _fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, values, side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi_reference(values: np.ndarray, n_bins: int = DEFAULT_BINS) -> PsiReference:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        raise ValueError("no values to build a drift reference from")
    edges = np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins))
    return PsiReference(
        tuple(float(e) for e in edges), tuple(float(f) for f in _fractions(values, edges))
    )


def psi(reference: PsiReference, values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        raise ValueError("no recent values to compare with the reference")
    expected = np.maximum(np.asarray(reference.fractions), EPS)
    actual = np.maximum(_fractions(values, np.asarray(reference.edges)), EPS)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
