"""Model registry, logged predictions, calibration history and the ML strategy's own mode."""

from __future__ import annotations

from django.db import models


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "candidate"
    ACTIVE = "active", "active"
    RETIRED = "retired", "retired"


class ModelVersion(models.Model):
    """One trained model: its file (sha256-checked at load), data, window and held-out metrics.

    ``metrics`` (held-out window): log_loss, brier, ece, ece_bins, auc, n, base_rate,
    ece_uncalibrated, log_loss_uncalibrated, backtest_pnl, backtest_trades.
    """

    version = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=128)
    algorithm = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    feature_names = models.JSONField(default=list)
    instrument = models.CharField(max_length=32)
    timeframe = models.CharField(max_length=8, default="1m")
    train_start = models.DateTimeField()
    train_end = models.DateTimeField()
    heldout_start = models.DateTimeField()
    heldout_end = models.DateTimeField()
    data_path = models.CharField(max_length=500)
    data_sha256 = models.CharField(max_length=64)
    file_path = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict)
    fold_metrics = models.JSONField(default=list)
    drift_reference = models.JSONField(
        default=dict, help_text="PSI bins per feature (training window)"
    )
    status = models.CharField(
        max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE
    )
    promoted_by = models.CharField(max_length=128, blank=True, default="")
    promoted_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="active"),
                name="ml_one_active_model",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.status})"


class Prediction(models.Model):
    """One probability the live strategy computed, resolved once its horizon has passed."""

    created_at = models.DateTimeField(auto_now_add=True)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions"
    )
    instrument = models.CharField(max_length=32)
    bar_ts = models.DateTimeField(help_text="open time of the bar the prediction was made at")
    horizon = models.PositiveIntegerField()
    probability = models.FloatField()
    features = models.JSONField(default=list)
    features_hash = models.CharField(max_length=64)
    outcome = models.BooleanField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    decision_id = models.BigIntegerField(null=True, blank=True, help_text="audit.DecisionLog id")

    class Meta:
        ordering = ("-bar_ts", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "instrument", "bar_ts"], name="ml_prediction_unique"
            )
        ]
        indexes = [
            models.Index(fields=["model_version", "resolved_at"]),
            models.Index(fields=["instrument", "outcome", "bar_ts"]),
        ]

    def __str__(self) -> str:
        return f"{self.instrument} {self.bar_ts:%Y-%m-%d %H:%M} p={self.probability:.3f}"


class PredictionCount(models.Model):
    """Predictions per model version, total and resolved: kept by PostgreSQL itself.

    Statement triggers on ml_prediction (migration 0002) add and subtract as rows are
    inserted, resolved, moved or deleted, one write per statement, by whatever writes them (the engine, the resolver, a bulk
    load, psql), so /metrics reads two numbers instead of counting a year of predictions
    at every scrape (apps.ml.metrics). Never written by the app.
    """

    model_version = models.OneToOneField(
        ModelVersion, on_delete=models.CASCADE, primary_key=True, related_name="prediction_count"
    )
    total = models.BigIntegerField(default=0)
    resolved = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.model_version_id}: {self.resolved}/{self.total} resolved"


class CalibrationLevel(models.TextChoices):
    OK = "ok", "ok"
    WARNING = "warning", "warning (ECE > 0.10)"
    CRITICAL = "critical", "critical (ECE > 0.15)"
    INSUFFICIENT = "insufficient", "too few resolved predictions"


class CalibrationSnapshot(models.Model):
    """One run of the monitor: live ECE over resolved predictions and feature drift."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="snapshots"
    )
    n = models.PositiveIntegerField()
    n_bins = models.PositiveIntegerField()
    ece = models.FloatField(null=True, blank=True)
    brier = models.FloatField(null=True, blank=True)
    bins = models.JSONField(default=list, help_text="reliability: count, mean p, observed rate")
    psi = models.JSONField(default=dict, help_text="PSI per feature vs the training window")
    psi_max = models.FloatField(null=True, blank=True)
    drifted = models.JSONField(default=list)
    level = models.CharField(max_length=16, choices=CalibrationLevel.choices)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # the latest snapshot of a version (/metrics): one index probe, whatever the history
            models.Index(fields=["model_version", "-created_at", "-id"], name="ml_snapshot_latest")
        ]


class MlControl(models.Model):
    """The ML strategy's own mode (one row): observation after a critical ECE, until a
    better model is promoted. Decisions are then logged as "would ..." and nothing is sent."""

    observation = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True, default="")
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.CharField(max_length=128, blank=True, default="")
