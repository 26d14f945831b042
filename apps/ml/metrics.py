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
        from django.db.models import OuterRef, Q, Subquery

        from apps.ml.models import CalibrationSnapshot, ModelStatus, ModelVersion

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
        # One query, whatever the history: the counts PostgreSQL keeps as predictions are
        # written (ml.PredictionCount) and the latest snapshot by its index.
        latest = CalibrationSnapshot.objects.filter(model_version=OuterRef("pk")).order_by(
            "-created_at", "-id"
        )
        try:
            rows = (
                ModelVersion.objects.filter(
                    Q(status=ModelStatus.ACTIVE) | Q(prediction_count__total__gt=0)
                )
                .annotate(
                    last_ece=Subquery(latest.values("ece")[:1]),
                    last_psi_max=Subquery(latest.values("psi_max")[:1]),
                )
                .order_by("version")
                .values_list(
                    "version",
                    "prediction_count__total",
                    "prediction_count__resolved",
                    "last_ece",
                    "last_psi_max",
                )
            )
            for version, n_total, n_resolved, last_ece, last_psi_max in rows:
                resolved = n_resolved or 0
                total.add_metric([version, "true"], resolved)
                total.add_metric([version, "false"], (n_total or 0) - resolved)
                if last_ece is not None:
                    ece.add_metric([version], last_ece)
                if last_psi_max is not None:
                    psi_max.add_metric([version], last_psi_max)
        except DatabaseError:
            logger.warning("ml metrics: database unavailable during scrape")
        yield ece
        yield total
        yield psi_max
