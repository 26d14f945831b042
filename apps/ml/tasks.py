"""Thin Celery wrappers: the quarterly retrain (queue "ml") and the calibration monitor."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task


@shared_task(name="ml.retrain", time_limit=3600, soft_time_limit=3500)
def retrain(data_path: str | None = None) -> str:
    """Quarterly: retrain on ``data_path`` (default ``settings.ML_RETRAIN_DATA``)."""
    from django.conf import settings

    from apps.ml.services import model_retrain

    path = data_path or getattr(settings, "ML_RETRAIN_DATA", "")
    if not path:
        raise ValueError("ml.retrain needs data_path (or settings.ML_RETRAIN_DATA): a gap-free CSV")
    return model_retrain(data_path=Path(path), actor="task:ml.retrain").version


@shared_task(name="ml.calibration_monitor", time_limit=120, soft_time_limit=100)
def calibration_monitor() -> str | None:
    from django.utils import timezone

    from apps.ml.services import calibration_monitor, predictions_resolve_from_store

    now = timezone.now()
    predictions_resolve_from_store(now=now)
    snapshot = calibration_monitor(now=now)
    return None if snapshot is None else snapshot.level
