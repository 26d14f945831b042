"""Labels: did the forward return over ``horizon`` bars beat the round-trip costs?

y_t = 1 if close_{t+horizon} / close_t - 1 > cost, else 0; NaN for the last ``horizon``
bars (their outcome is not known yet). ``cost`` is the round trip: 2 x fee rate
(+ slippage, if any), as a fraction.
"""

from __future__ import annotations

import numpy as np


def forward_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """close_{t+h} / close_t - 1, NaN where t+h is past the end."""
    if horizon < 1:
        raise ValueError(f"horizon must be a positive number of bars, got {horizon}")
    out = np.full(len(close), np.nan)
    out[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
    return out


def label_exceeds_cost(close: np.ndarray, horizon: int, cost: float) -> np.ndarray:
    """1.0 / 0.0 where the forward return beats ``cost``; NaN where it is not known."""
    if cost < 0:
        raise ValueError(f"cost must be >= 0, got {cost}")
    fwd = forward_return(close, horizon)
    out = np.where(fwd > cost, 1.0, 0.0)
    out[np.isnan(fwd)] = np.nan
    return out


def outcome(entry_close: float, exit_close: float, cost: float) -> int:
    """The label of one prediction once its horizon has passed (for live resolution)."""
    return int(exit_close / entry_close - 1.0 > cost)
