"""ML writes: train + register, promote (audited), load (sha256), predict + log, resolve, monitor.

Any failure (bad data, unknown version, corrupted file, worse candidate) raises an
``MlError`` with a clear message before anything changes: the active model stays active.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.backtest.domain.backtest import run_backtest
from apps.marketdata.domain.csvfile import instrument_from_path, read_bars
from apps.marketdata.models import Bar as BarRow
from apps.ml.domain import calibration as cal
from apps.ml.domain.drift import DRIFT_THRESHOLD, PsiReference, psi
from apps.ml.domain.errors import MlError, ModelIntegrityError, TrainingDataError
from apps.ml.domain.features import FEATURE_NAMES, WINDOW, BarArrays, feature_matrix
from apps.ml.domain.labels import outcome
from apps.ml.domain.model import (
    ModelBundle,
    TrainConfig,
    TrainResult,
    evaluate,
    file_sha256,
    load_bundle,
    save_bundle,
    train_model,
)
from apps.ml.domain.strategy import DEFAULT_THRESHOLD, MlStrategy
from apps.ml.models import (
    CalibrationLevel,
    CalibrationSnapshot,
    MlControl,
    ModelStatus,
    ModelVersion,
    Prediction,
)
from apps.model.bars import Bar
from apps.model.errors import MarketDataError
from apps.notifications.services.alerts import alert_raise

logger = logging.getLogger(__name__)

ECE_WARNING = 0.10
ECE_CRITICAL = 0.15
MONITOR_WINDOW = 2000  # resolved predictions in the rolling ECE window
MONITOR_MIN = 200  # fewer resolved predictions than this: no verdict
BACKTEST_STAKE = Decimal(100)


def models_dir() -> Path:
    return Path(getattr(settings, "ML_MODELS_DIR", Path(settings.BASE_DIR) / "models"))


class ModelNotFoundError(MlError):
    code = "ml_model_not_found"


# -- training and registration ------------------------------------------------------------


def bars_load(path: Path) -> list[Bar]:
    """All bars of a CSV; a malformed row is an error (training never skips data silently)."""

    def reject(rejection: Any) -> None:
        raise TrainingDataError(
            f"bad row in {rejection.source} line {rejection.line}: {rejection.reason}; fix the file"
        )

    try:
        return list(read_bars(path, on_reject=reject))
    except MarketDataError as exc:
        raise TrainingDataError(exc.message) from None


class _LookupPredictor:
    """Probabilities computed in one batch, served by feature vector (identical values:
    the live ``FeatureState`` gives bit-identical vectors); falls back to the model."""

    def __init__(self, bundle: ModelBundle, x: np.ndarray) -> None:
        ok = ~np.isnan(x).any(axis=1)
        p = bundle.predict_proba(x[ok])
        self._table = {row.tobytes(): float(v) for row, v in zip(x[ok], p, strict=True)}
        self._fallback = bundle.predictor()

    def __call__(self, features: np.ndarray) -> float:
        value = self._table.get(features.tobytes())
        return self._fallback(features) if value is None else value


def heldout_backtest(
    bundle: ModelBundle, bars: list[Bar], start: int, end: int, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """The ML strategy through ``run_backtest`` on bars [start, end) (warm-up bars before)."""
    window = bars[max(0, start - (WINDOW - 1)) : end]
    predictor = _LookupPredictor(bundle, feature_matrix(BarArrays.from_bars(window)))
    fee = Decimal(str(bundle.config["fee_rate"]))
    result = run_backtest(
        window,
        lambda: MlStrategy(predictor, threshold=threshold, horizon=bundle.horizon),
        stake=BACKTEST_STAKE,
        fee_rate=fee,
    )
    s = result.summary
    return {
        "backtest_pnl": float(s.pnl),
        "backtest_trades": float(s.trades),
        "backtest_stake": float(BACKTEST_STAKE),
        "backtest_threshold": threshold,
    }


def _new_version(now: datetime, sha: str) -> str:
    return f"m{now:%Y%m%d%H%M%S}-{sha[:8]}"


def model_train(
    *,
    data_path: Path,
    config: TrainConfig,
    actor: str,
    progress: Callable[[str], object] | None = None,
    now: datetime | None = None,
) -> ModelVersion:
    """Train with walk-forward splits, save under models/, register as a candidate."""
    data_path = Path(data_path)
    if not data_path.is_file():
        raise TrainingDataError(f"data file not found: {data_path}")
    bars = bars_load(data_path)
    instruments = {b.instrument for b in bars[:1]}
    instrument = instruments.pop() if instruments else instrument_from_path(data_path)
    arrays = BarArrays.from_bars(bars)
    result = train_model(arrays, [b.ts for b in bars], config, progress=progress)
    if progress:
        progress("held-out backtest")
    start, end = result.heldout_index
    metrics = dict(result.heldout_metrics)
    metrics.update(heldout_backtest(result.bundle, bars, start, end))
    metrics["train_seconds"] = result.seconds
    return model_register(
        result=result,
        metrics=metrics,
        instrument=instrument,
        data_path=data_path,
        actor=actor,
        now=now or timezone.now(),
    )


def model_register(
    *,
    result: TrainResult,
    metrics: dict[str, float],
    instrument: str,
    data_path: Path,
    actor: str,
    now: datetime,
) -> ModelVersion:
    directory = models_dir()
    tmp_path = directory / f".training-{now:%Y%m%d%H%M%S%f}.joblib"
    sha = save_bundle(result.bundle, tmp_path)
    version = _new_version(now, sha)
    path = directory / f"{version}.joblib"
    tmp_path.replace(path)
    tmp_path.with_name(tmp_path.name + ".sha256").unlink(missing_ok=True)
    path.with_name(path.name + ".sha256").write_text(f"{sha}  {path.name}\n")
    with transaction.atomic():
        mv = ModelVersion.objects.create(
            version=version,
            created_by=actor,
            algorithm=result.config.algorithm,
            params=result.config.params(),
            feature_names=list(FEATURE_NAMES),
            instrument=instrument,
            train_start=result.train_start,
            train_end=result.train_end,
            heldout_start=result.heldout_start,
            heldout_end=result.heldout_end,
            data_path=str(Path(data_path).resolve()),
            data_sha256=file_sha256(Path(data_path)),
            file_path=str(path),
            file_sha256=sha,
            metrics=_finite(metrics),
            fold_metrics=[
                {
                    "fold": vars(f.fold) if hasattr(f.fold, "__dict__") else _fold(f.fold),
                    **_finite(f.metrics),
                }
                for f in result.folds
            ],
            drift_reference=result.drift_reference,
        )
        audit_record(
            actor=actor,
            action="ml.model_registered",
            target=version,
            data={"metrics": _finite(metrics), "file_sha256": sha},
        )
    return mv


def _fold(fold: Any) -> dict[str, int]:
    return {
        "train_start": fold.train_start,
        "train_end": fold.train_end,
        "test_start": fold.test_start,
        "test_end": fold.test_end,
    }


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if np.isfinite(v) else None) for k, v in values.items()}


# -- loading --------------------------------------------------------------------------------


def model_version_get(*, version: str) -> ModelVersion:
    try:
        return ModelVersion.objects.get(version=version)
    except ModelVersion.DoesNotExist:
        raise ModelNotFoundError(
            f"unknown model version {version!r}; see manage.py model_list"
        ) from None


def model_load(*, model_version: ModelVersion) -> ModelBundle:
    """Load a registered model after checking its file against the recorded sha256."""
    return load_bundle(Path(model_version.file_path), model_version.file_sha256)


def model_active_get() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelStatus.ACTIVE).first()


# -- promotion -------------------------------------------------------------------------------


def _compare_on_heldout(candidate: ModelVersion, active: ModelVersion) -> tuple[dict, dict]:
    """Both models scored on the candidate's held-out window of the candidate's data."""
    path = Path(candidate.data_path)
    if not path.is_file():
        raise MlError(
            f"cannot compare: the candidate's data {path} is gone; restore it or use --force"
        )
    if file_sha256(path) != candidate.data_sha256:
        raise MlError(f"cannot compare: {path} changed since training (sha256 differs)")
    bars = bars_load(path)
    ts = [b.ts for b in bars]
    import bisect

    start = bisect.bisect_left(ts, candidate.heldout_start)
    end = bisect.bisect_right(ts, candidate.heldout_end)
    arrays = BarArrays.from_bars(bars)
    n_bins = int(candidate.params.get("n_bins", cal.DEFAULT_BINS))
    cand = evaluate(model_load(model_version=candidate), arrays, start, end, n_bins)
    act = evaluate(model_load(model_version=active), arrays, start, end, n_bins)
    return cand, act


def model_promote(
    *, version: str, actor: str, force: bool = False, reason: str = "", now: datetime | None = None
) -> ModelVersion:
    """Make ``version`` the active model if it beats the active one on held-out data.

    "Beats": lower log loss on the candidate's held-out window (both models scored on the
    same bars) and a held-out ECE no worse than the warning level. ``force`` overrides the
    comparison (``reason`` required) and is audited as ``ml.promote_override``. A refusal
    is audited too; either way the active model is unchanged unless promotion succeeds.
    """
    now = now or timezone.now()
    candidate = model_version_get(version=version)
    if candidate.status == ModelStatus.ACTIVE:
        raise MlError(f"{version} is already the active model")
    model_load(model_version=candidate)  # refuses a tampered / missing file first
    active = model_active_get()
    comparison: dict[str, Any] = {}
    if active is not None and not force:
        cand, act = _compare_on_heldout(candidate, active)
        comparison = {"candidate": _finite(cand), "active": _finite(act)}
        better = cand["log_loss"] < act["log_loss"] and cand["ece"] <= max(ECE_WARNING, act["ece"])
        if not better:
            audit_record(
                actor=actor, action="ml.promotion_refused", target=version, data=comparison
            )
            raise MlError(
                f"{version} does not beat the active model {active.version} on held-out data "
                f"({candidate.heldout_start:%Y-%m-%d} .. {candidate.heldout_end:%Y-%m-%d}): "
                f"log loss {cand['log_loss']:.5f} vs {act['log_loss']:.5f}, "
                f"ECE {cand['ece']:.4f} vs {act['ece']:.4f}; not promoted "
                f"(--force --reason '...' overrides, audited)"
            )
    if force and not reason.strip():
        raise MlError("a forced promotion needs --reason (it is audited)")
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().filter(status=ModelStatus.ACTIVE)
        for old in locked:
            old.status = ModelStatus.RETIRED
            old.retired_at = now
            old.save(update_fields=["status", "retired_at"])
        candidate.status = ModelStatus.ACTIVE
        candidate.promoted_by = actor
        candidate.promoted_at = now
        candidate.save(update_fields=["status", "promoted_by", "promoted_at"])
        audit_record(
            actor=actor,
            action="ml.promote_override" if force else "ml.promoted",
            target=version,
            data={
                "previous": active.version if active else None,
                "reason": reason,
                **comparison,
            },
        )
        ml_observation_set(
            observation=False, actor=actor, reason=f"model {version} promoted", now=now
        )
    return candidate


# -- the ML strategy's own mode ----------------------------------------------------------------


def ml_control_get() -> MlControl:
    control, _ = MlControl.objects.get_or_create(pk=1)
    return control


def ml_observation_set(*, observation: bool, actor: str, reason: str, now: datetime) -> MlControl:
    with transaction.atomic():
        control, _ = MlControl.objects.select_for_update().get_or_create(pk=1)
        if control.observation == observation:
            return control
        control.observation = observation
        control.reason = reason[:300]
        control.changed_at = now
        control.changed_by = actor
        control.save()
        audit_record(
            actor=actor,
            action="ml.observation_on" if observation else "ml.observation_off",
            target="ml",
            data={"reason": reason},
        )
    return control


# -- live: predict + log, strategy, resolve ----------------------------------------------------


def features_hash(features: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(features, dtype=np.float64).tobytes()).hexdigest()


def prediction_log(
    *, model_version: ModelVersion, bar: Bar, probability: float, features: np.ndarray
) -> Prediction:
    prediction, _ = Prediction.objects.get_or_create(
        model_version=model_version,
        instrument=bar.instrument,
        bar_ts=bar.ts,
        defaults={
            "horizon": int(model_version.params.get("horizon", 1)),
            "probability": probability,
            "features": [float(v) for v in features],
            "features_hash": features_hash(features),
        },
    )
    return prediction


def ml_strategy_live(*, threshold: float | None = None) -> MlStrategy:
    """The ML strategy on the active model; every prediction is logged with its version."""
    mv = model_active_get()
    if mv is None:
        raise ModelNotFoundError("no active model: train one and run manage.py model_promote")
    bundle = model_load(model_version=mv)

    if threshold is None:
        threshold = float(getattr(settings, "ML_THRESHOLD", DEFAULT_THRESHOLD))

    def on_prediction(bar: Bar, p: float, features: np.ndarray) -> int:
        # The ML strategy's own mode is re-read each bar: the monitor may switch it.
        strategy.observation = MlControl.objects.filter(pk=1, observation=True).exists()
        return prediction_log(model_version=mv, bar=bar, probability=p, features=features).pk

    strategy = MlStrategy(
        bundle.predictor(),
        threshold=threshold,
        horizon=bundle.horizon,
        model_version=mv.version,
        on_prediction=on_prediction,
        observation=ml_control_get().observation,
    )
    return strategy


def prediction_link_decision(*, prediction_id: int, decision_id: int) -> None:
    Prediction.objects.filter(pk=prediction_id, decision_id__isnull=True).update(
        decision_id=decision_id
    )


def predictions_resolve(*, closes: dict[tuple[str, datetime], float], now: datetime) -> int:
    """Resolve predictions whose horizon has passed, from known closes by (instrument, ts).

    The outcome is the same label as training: close_{t+h} / close_t - 1 > round-trip cost.
    """
    resolved = 0
    pending = Prediction.objects.filter(outcome__isnull=True).select_related("model_version")
    for pred in pending.iterator():
        start = closes.get((pred.instrument, pred.bar_ts))
        end = closes.get((pred.instrument, pred.bar_ts + timedelta(minutes=pred.horizon)))
        if start is None or end is None:
            continue
        params = pred.model_version.params
        cost = 2.0 * (float(params.get("fee_rate", 0)) + float(params.get("slippage", 0)))
        pred.outcome = bool(outcome(start, end, cost))
        pred.resolved_at = now
        pred.save(update_fields=["outcome", "resolved_at"])
        resolved += 1
    return resolved


def predictions_resolve_from_store(*, timeframe: str = "1m", now: datetime) -> int:
    """Resolve pending predictions from the stored bars (the live path)."""
    pending = list(
        Prediction.objects.filter(outcome__isnull=True).values_list(
            "instrument", "bar_ts", "horizon"
        )
    )
    if not pending:
        return 0
    wanted = {(i, ts) for i, ts, _ in pending} | {
        (i, ts + timedelta(minutes=h)) for i, ts, h in pending
    }
    times = {ts for _, ts in wanted}
    rows = BarRow.objects.filter(timeframe=timeframe, ts__in=times).values_list(
        "instrument__symbol", "ts", "close"
    )
    closes = {(sym, ts): float(close) for sym, ts, close in rows}
    return predictions_resolve(closes=closes, now=now)


# -- monitoring ------------------------------------------------------------------------------


def _alert(level: str, code: str, message: str, data: dict[str, Any]) -> None:
    """Raise an alert (one open alert per code; ``alert_raise`` logs it too)."""
    alert_raise(severity=level, code=code, message=message, data=data)


def calibration_monitor(
    *, now: datetime, window: int = MONITOR_WINDOW, min_resolved: int = MONITOR_MIN
) -> CalibrationSnapshot | None:
    """Live ECE over the last ``window`` resolved predictions of the active model + PSI.

    ECE > 0.10 warns; > 0.15 is critical and puts the ML strategy in observation
    (until a better model is promoted). Returns None when there is no active model.
    """
    mv = model_active_get()
    if mv is None:
        return None
    n_bins = int(mv.params.get("n_bins", cal.DEFAULT_BINS))
    resolved = list(
        Prediction.objects.filter(model_version=mv, outcome__isnull=False)
        .order_by("-bar_ts")
        .values_list("probability", "outcome")[:window]
    )
    recent = list(
        Prediction.objects.filter(model_version=mv)
        .order_by("-bar_ts")
        .values_list("features", flat=True)[:window]
    )
    psi_values: dict[str, float] = {}
    if len(recent) >= min_resolved:
        matrix = np.array(recent, dtype=np.float64)
        for i, name in enumerate(mv.feature_names):
            ref = mv.drift_reference.get(name)
            if ref:
                psi_values[name] = psi(PsiReference.from_json(ref), matrix[:, i])
    drifted = sorted(k for k, v in psi_values.items() if v > DRIFT_THRESHOLD)
    snapshot = CalibrationSnapshot(
        model_version=mv,
        n=len(resolved),
        n_bins=n_bins,
        psi=psi_values,
        psi_max=max(psi_values.values()) if psi_values else None,
        drifted=drifted,
        level=CalibrationLevel.INSUFFICIENT,
    )
    if len(resolved) >= min_resolved:
        p = np.array([r[0] for r in resolved])
        y = np.array([1.0 if r[1] else 0.0 for r in resolved])
        snapshot.ece = cal.expected_calibration_error(p, y, n_bins)
        snapshot.brier = cal.brier_score(p, y)
        snapshot.bins = [
            {
                "lower": b.lower,
                "upper": b.upper,
                "count": b.count,
                "mean_predicted": b.mean_predicted,
                "observed_rate": b.observed_rate,
            }
            for b in cal.reliability_bins(p, y, n_bins)
        ]
        if snapshot.ece > ECE_CRITICAL:
            snapshot.level = CalibrationLevel.CRITICAL
        elif snapshot.ece > ECE_WARNING:
            snapshot.level = CalibrationLevel.WARNING
        else:
            snapshot.level = CalibrationLevel.OK
    snapshot.save()
    data = {"model_version": mv.version, "ece": snapshot.ece, "n": snapshot.n}
    if snapshot.level == CalibrationLevel.CRITICAL:
        message = (
            f"ML calibration critical: live ECE {snapshot.ece:.3f} > {ECE_CRITICAL} "
            f"({mv.version}); ML strategy moved to observation"
        )
        _alert("critical", "ml_calibration_critical", message, data)
        ml_observation_set(observation=True, actor="ml.monitor", reason=message, now=now)
    elif snapshot.level == CalibrationLevel.WARNING:
        _alert(
            "warning",
            "ml_calibration_warning",
            f"ML calibration warning: live ECE {snapshot.ece:.3f} > {ECE_WARNING} ({mv.version})",
            data,
        )
    if drifted:
        _alert(
            "warning",
            "ml_feature_drift",
            f"ML feature drift (PSI > {DRIFT_THRESHOLD}): {', '.join(drifted)}",
            {**data, "psi": {k: psi_values[k] for k in drifted}},
        )
    return snapshot


def model_retrain(
    *,
    data_path: Path,
    actor: str,
    progress: Callable[[str], object] | None = None,
    **overrides: Any,
) -> ModelVersion:
    """Train a candidate on fresh data with the active model's settings, then try to promote it.

    A candidate that does not beat the active model stays a candidate (the refusal is
    audited); the active model is unchanged.
    """
    active = model_active_get()
    base = TrainConfig()
    if active is not None:
        known = {k: v for k, v in active.params.items() if k in TrainConfig.__dataclass_fields__}
        base = TrainConfig(**known)
    config = replace(base, **overrides)
    candidate = model_train(data_path=data_path, config=config, actor=actor, progress=progress)
    try:
        return model_promote(version=candidate.version, actor=actor)
    except MlError as exc:
        logger.warning("retrain: %s", exc.message)
        return candidate


__all__ = [
    "ECE_CRITICAL",
    "ECE_WARNING",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "TrainingDataError",
    "calibration_monitor",
    "model_load",
    "model_promote",
    "model_retrain",
    "model_train",
]
