"""Reconnect delays: exponential backoff with full jitter (AWS architecture blog's variant).

Full jitter spreads reconnects of many clients (or one client's retries after a broker
outage) uniformly in [0, min(cap, base * 2**attempt)], so they never march in step.
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before reconnect attempt number ``attempt`` (0 = the first retry)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0, ceiling)
