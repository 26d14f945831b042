"""ML strategy: enter when a calibrated model's probability clears a threshold.

The model predicts P(forward return over ``horizon`` bars > round-trip costs). At each
bar's close the features of that bar (``apps.ml.domain.features``, the same function as
training) go through ``predictor``:

- ENTER_LONG when p >= ``threshold`` and no entry is being held;
- EXIT_LONG once ``horizon`` bars have passed since the entry signal and p < threshold
  (the horizon the label was trained for);
- HOLD otherwise, and while the feature window warms up (or restarts after a gap).

``threshold`` covers costs by construction: the label already nets the round trip, so
p >= 0.5 means "more likely than not to beat costs"; the default is 0.5. The stake is
scaled by probability: 1x at the threshold rising linearly to ``max_stake_multiplier``
at p = 1 (the caller caps it by the risk limits). Every prediction can be reported to
``on_prediction(bar, p, features)``, which may return an id (the live path logs a row).
Pure: no Django; the backtest and the live engine run this same class.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from apps.ml.domain.features import FeatureState
from apps.strategies.domain.base import Signal, SignalAction

if TYPE_CHECKING:
    import numpy as np

    from apps.model.bars import Bar

_HOLD = SignalAction.HOLD
DEFAULT_THRESHOLD = 0.5


class _State:
    __slots__ = ("bars_held", "features", "holding", "p", "prediction_id")

    def __init__(self) -> None:
        self.features = FeatureState()
        self.holding = False
        self.bars_held = 0
        self.p: float | None = None
        self.prediction_id: Any = None


def stake_multiplier(p: float, threshold: float, cap: float) -> Decimal:
    """1 at the threshold, rising linearly to ``cap`` at p = 1 (0 below the threshold)."""
    if p < threshold:
        return Decimal(0)
    if threshold >= 1:
        return Decimal(1)
    m = 1.0 + (cap - 1.0) * (p - threshold) / (1.0 - threshold)
    return Decimal(str(round(min(m, cap), 4)))


class MlStrategy:
    name = "ml"

    def __init__(
        self,
        predictor: Callable[[np.ndarray], float],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        horizon: int,
        model_version: str = "",
        max_stake_multiplier: float = 2.0,
        on_prediction: Callable[[Bar, float, np.ndarray], Any] | None = None,
        observation: bool = False,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon!r}")
        if max_stake_multiplier < 1:
            raise ValueError("max_stake_multiplier must be >= 1")
        self.predictor = predictor
        self.threshold = threshold
        self.horizon = horizon
        self.model_version = model_version
        self.max_stake_multiplier = max_stake_multiplier
        self.on_prediction = on_prediction
        self.observation = observation
        self.params: dict[str, Any] = {
            "threshold": threshold,
            "horizon": horizon,
            "model_version": model_version,
        }
        self._states: dict[str, _State] = {}

    def _state(self, instrument: str) -> _State:
        st = self._states.get(instrument)
        if st is None:
            st = self._states[instrument] = _State()
        return st

    def decide(self, bar: Bar) -> SignalAction:
        st = self._state(bar.instrument)
        features = st.features.update(bar)
        if st.holding:
            st.bars_held += 1
        if features is None:
            st.p = None
            st.prediction_id = None
            return _HOLD
        p = self.predictor(features)
        st.p = p
        st.prediction_id = self.on_prediction(bar, p, features) if self.on_prediction else None
        if not st.holding:
            if p >= self.threshold:
                st.holding = True
                st.bars_held = 0
                return SignalAction.ENTER_LONG
            return _HOLD
        if st.bars_held >= self.horizon and p < self.threshold:
            st.holding = False
            return SignalAction.EXIT_LONG
        return _HOLD

    def warm(self, bar: Bar) -> None:
        """``decide`` without reporting the prediction: a restart's warm-up on stored bars
        rebuilds the feature window and the holding state, and logs nothing."""
        on_prediction, self.on_prediction = self.on_prediction, None
        try:
            self.decide(bar)
        finally:
            self.on_prediction = on_prediction

    def probability(self, instrument: str) -> float | None:
        st = self._states.get(instrument)
        return None if st is None else st.p

    def stake_multiplier(self, instrument: str) -> Decimal:
        """Stake scale for an entry at the last bar (1 .. max_stake_multiplier)."""
        p = self.probability(instrument)
        if p is None:
            return Decimal(1)
        return max(stake_multiplier(p, self.threshold, self.max_stake_multiplier), Decimal(1))

    def signal_for(self, bar: Bar, action: SignalAction) -> Signal:
        st = self._state(bar.instrument)
        inputs = {
            "threshold": str(self.threshold),
            "horizon": str(self.horizon),
            "model_version": self.model_version,
        }
        if st.p is not None:
            inputs["probability"] = f"{st.p:.6f}"
            inputs["stake_multiplier"] = str(self.stake_multiplier(bar.instrument))
        if st.prediction_id is not None:
            inputs["prediction_id"] = str(st.prediction_id)
        if self.observation:
            inputs["ml_observation"] = "true"
        return Signal(bar.instrument, bar.ts, action, bar.close, inputs)

    def on_bar(self, bar: Bar) -> Signal:
        return self.signal_for(bar, self.decide(bar))


def ml_strategy_from_file(model: str, threshold: str) -> MlStrategy:
    """Registry factory: a model file (sha256 checked against its ``.sha256`` sidecar).

    ``threshold`` is a probability, e.g. "0.5" (give "default" for 0.5).
    """
    from pathlib import Path

    from apps.ml.domain.model import load_bundle

    try:
        value = DEFAULT_THRESHOLD if threshold == "default" else float(threshold)
    except ValueError:
        raise ValueError(f"threshold must be a probability like 0.5, got {threshold!r}") from None
    from apps.ml.domain.errors import MlError

    if not Path(model).is_file():
        raise ValueError(f"model file not found: {model} (models/<version>.joblib; see model_list)")
    try:
        bundle = _cached_bundle(str(Path(model).resolve()), load_bundle)
    except (MlError, OSError) as exc:
        raise ValueError(getattr(exc, "message", str(exc))) from None
    return MlStrategy(
        bundle.predictor(), threshold=value, horizon=bundle.horizon, model_version=Path(model).stem
    )


_BUNDLES: dict[str, Any] = {}


def _cached_bundle(path: str, loader: Callable[[Any], Any]) -> Any:
    """Load each model file once per process (the backtest builds one strategy per instrument)."""
    from pathlib import Path

    from apps.ml.domain.model import file_sha256

    key = f"{path}:{file_sha256(Path(path))}"
    if key not in _BUNDLES:
        _BUNDLES[key] = loader(Path(path))
    return _BUNDLES[key]
