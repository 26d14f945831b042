"""ML reads for the panel, commands and metrics."""

from __future__ import annotations

from typing import Any

from apps.ml.models import CalibrationSnapshot, MlControl, ModelStatus, ModelVersion, Prediction


def model_version_list(*, status: str | None = None) -> list[ModelVersion]:
    qs = ModelVersion.objects.all()
    if status:
        qs = qs.filter(status=status)
    return list(qs)


def ml_page_snapshot(*, history: int = 200) -> dict[str, Any]:
    """Everything the ML page shows: active model, reliability bins, ECE history, drift."""
    active = ModelVersion.objects.filter(status=ModelStatus.ACTIVE).first()
    control = MlControl.objects.filter(pk=1).first()
    data: dict[str, Any] = {
        "active": None,
        "observation": bool(control and control.observation),
        "observation_reason": control.reason if control else "",
        "reliability": [],
        "ece_history": [],
        "psi": {},
        "predictions": {"total": 0, "resolved": 0},
        "models": [
            {
                "version": m.version,
                "status": m.status,
                "ece": m.metrics.get("ece"),
                "log_loss": m.metrics.get("log_loss"),
            }
            for m in ModelVersion.objects.all()[:20]
        ],
    }
    if active is None:
        return data
    data["active"] = {
        "version": active.version,
        "metrics": active.metrics,
        "promoted_by": active.promoted_by,
    }
    snaps = list(
        CalibrationSnapshot.objects.filter(model_version=active).order_by("-created_at")[:history]
    )
    if snaps:
        data["reliability"] = snaps[0].bins
        data["psi"] = snaps[0].psi
        data["level"] = snaps[0].level
    data["ece_history"] = [
        {"ts": s.created_at.timestamp(), "ece": s.ece} for s in reversed(snaps) if s.ece is not None
    ]
    preds = Prediction.objects.filter(model_version=active)
    data["predictions"] = {
        "total": preds.count(),
        "resolved": preds.filter(outcome__isnull=False).count(),
    }
    return data
