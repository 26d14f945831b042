"""Moving-average crossover.

SMA_N(t) is the plain mean of the last N closes up to and including bar t.
With fast_t = SMA_fast(t) and slow_t = SMA_slow(t):

- cross above (ENTER_LONG): fast_t > slow_t and fast_{t-1} <= slow_{t-1}
- cross below (EXIT_LONG):  fast_t < slow_t and fast_{t-1} >= slow_{t-1}
- anything else, or fewer than max(fast, slow) + 1 closes seen: HOLD.

The sums are kept exactly (Decimal additions of the closes, rolling), and the
means are compared as fast_sum * slow vs slow_sum * fast, which orders the two
means exactly as exact division would (no rounding of either mean can turn a
tie into a cross or back). State is kept per instrument, so one instance can
follow several instruments.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from apps.strategies.domain.base import Signal, SignalAction

if TYPE_CHECKING:
    from apps.model.bars import Bar

_ENTER = SignalAction.ENTER_LONG
_EXIT = SignalAction.EXIT_LONG
_HOLD = SignalAction.HOLD
_ZERO = Decimal(0)


class _State:
    """Rolling windows of one instrument (ring buffer of the last max(fast, slow) closes)."""

    __slots__ = ("buf", "count", "fast_sum", "pos", "prev", "slow_sum")

    def __init__(self, size: int) -> None:
        self.buf: list[Decimal] = [_ZERO] * size
        self.pos = 0
        self.count = 0
        self.fast_sum = _ZERO
        self.slow_sum = _ZERO
        # Sign of fast - slow at the previous bar; None until both SMAs exist.
        self.prev: int | None = None


class SmaCross:
    """Buy on a fast/slow SMA cross above, sell the position on a cross below."""

    name = "sma_cross"

    def __init__(self, fast: int, slow: int) -> None:
        """Create the strategy.

        Parameters
        ----------
        fast, slow
            Window lengths in bars, positive integers.

        Raises
        ------
        ValueError
            If a window is not a positive integer.
        """
        for label, value in (("fast", fast), ("slow", slow)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.fast = fast
        self.slow = slow
        self.params: dict[str, int] = {"fast": fast, "slow": slow}
        self._size = max(fast, slow)
        self._states: dict[str, _State] = {}

    def decide(self, bar: Bar) -> SignalAction:
        """Add `bar`'s close to the instrument's windows and return the action."""
        st = self._states.get(bar.instrument)
        if st is None:
            st = self._states[bar.instrument] = _State(self._size)
        close = bar.close
        fast = self.fast
        slow = self.slow
        size = self._size
        buf = st.buf
        pos = st.pos
        count = st.count
        # Read the closes leaving each window before overwriting the ring slot.
        if count >= fast:
            st.fast_sum = st.fast_sum + close - buf[pos - fast]
        else:
            st.fast_sum += close
        if count >= slow:
            st.slow_sum = st.slow_sum + close - buf[pos - slow]
        else:
            st.slow_sum += close
        buf[pos] = close
        st.pos = pos + 1 if pos + 1 < size else 0
        count += 1
        st.count = count
        if count < size:
            return _HOLD
        a = st.fast_sum * slow
        b = st.slow_sum * fast
        rel = 1 if a > b else (-1 if a < b else 0)
        prev = st.prev
        st.prev = rel
        if prev is None or rel == prev:
            return _HOLD
        if rel > 0:
            return _ENTER  # prev <= 0 here
        if rel < 0:
            return _EXIT  # prev >= 0 here
        return _HOLD

    def sma(self, instrument: str) -> tuple[Decimal, Decimal] | None:
        """Return (fast SMA, slow SMA) at the last bar seen, None before both exist."""
        st = self._states.get(instrument)
        if st is None or st.count < self._size:
            return None
        return st.fast_sum / self.fast, st.slow_sum / self.slow

    def signal_for(self, bar: Bar, action: SignalAction) -> Signal:
        """Build the `Signal` for the action `decide(bar)` just returned."""
        inputs = {"fast": str(self.fast), "slow": str(self.slow)}
        smas = self.sma(bar.instrument)
        if smas is not None:
            inputs["fast_sma"] = str(smas[0])
            inputs["slow_sma"] = str(smas[1])
        return Signal(bar.instrument, bar.ts, action, bar.close, inputs)

    def on_bar(self, bar: Bar) -> Signal:
        """Update with `bar` and return the full signal (HOLD when nothing to do)."""
        return self.signal_for(bar, self.decide(bar))
