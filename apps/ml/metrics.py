"""Prometheus: ML calibration, prediction counts and drift, read from the database at scrape."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class MlCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        yield GaugeMetricFamily("ml_calibration_ece", "", labels=["model_version"])
        yield GaugeMetricFamily("ml_predictions_total", "", labels=["model_version", "resolved"])
        yield GaugeMetricFamily("ml_feature_psi_max", "", labels=["model_version"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError
        from django.db.models import Count, Q

        from apps.ml.models import CalibrationSnapshot, ModelVersion

        ece = GaugeMetricFamily(
            "ml_calibration_ece",
            "Live ECE of the model over its rolling window of resolved predictions",
            labels=["model_version"],
        )
        total = GaugeMetricFamily(
            "ml_predictions_total",
            "Predictions logged per model version (resolved or not yet)",
            labels=["model_version", "resolved"],
        )
        psi_max = GaugeMetricFamily(
            "ml_feature_psi_max",
            "Largest population stability index over the features (vs the training window)",
            labels=["model_version"],
        )
        try:
            rows = (
                ModelVersion.objects.annotate(
                    resolved=Count("predictions", filter=Q(predictions__outcome__isnull=False)),
                    pending=Count("predictions", filter=Q(predictions__outcome__isnull=True)),
                )
                .filter(Q(status="active") | Q(predictions__isnull=False))
                .distinct()
            )
            for mv in rows:
                total.add_metric([mv.version, "true"], mv.resolved)
                total.add_metric([mv.version, "false"], mv.pending)
                snap = (
                    CalibrationSnapshot.objects.filter(model_version=mv)
                    .only("ece", "psi_max")
                    .first()
                )
                if snap is not None and snap.ece is not None:
                    ece.add_metric([mv.version], snap.ece)
                if snap is not None and snap.psi_max is not None:
                    psi_max.add_metric([mv.version], snap.psi_max)
        except DatabaseError:
            logger.warning("ml metrics: database unavailable during scrape")
        yield ece
        yield total
        yield psi_max
