"""Operations records: every maintenance run, and the daily checklists."""

from __future__ import annotations

from django.db import models


class RunOutcome(models.TextChoices):
    RUNNING = "running", "running"
    OK = "ok", "ok"
    FAILED = "failed", "failed"


class MaintenanceRun(models.Model):
    """One run of a maintenance job (backup, vacuum, log rotation, restore test, ...).

    The last successful run of each task is a Prometheus metric
    (``maintenance_last_success_timestamp{task=...}``, apps/ops/metrics.py).
    """

    task = models.CharField(max_length=64, db_index=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=8, choices=RunOutcome.choices, default=RunOutcome.RUNNING, db_index=True
    )
    detail = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=128, default="beat")

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [models.Index(fields=["task", "outcome", "-finished_at"])]

    def __str__(self) -> str:
        return f"{self.task} {self.started_at:%Y-%m-%d %H:%M} {self.outcome}"


class ChecklistKind(models.TextChoices):
    PRE_MARKET = "pre", "pre-market"
    POST_MARKET = "post", "post-market"


class ChecklistRun(models.Model):
    """One daily checklist (spec 10.1 / 10.3): the checked items and the manual ones.

    ``items`` is a list of ``{"key", "label", "status", "detail", "manual",
    "ticked_by", "ticked_at"}``; status is one of ok, warn, fail, unavailable, todo, done.
    """

    kind = models.CharField(max_length=8, choices=ChecklistKind.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    items = models.JSONField(default=list)
    actor = models.CharField(max_length=128, default="beat")
    telegram_sent = models.BooleanField(default=False)
    telegram_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.created_at:%Y-%m-%d %H:%M}"


class StressReport(models.Model):
    """One stress test (spec 7.1, quarterly): every scenario against every account's book.

    ``results`` is a list of ``{"account", "equity", "gross_exposure", "holdings",
    "scenarios": [ScenarioResult as JSON]}``; ``inputs`` records the scenario sizes and
    where they came from (files and their sha256), so a report can be re-derived.
    """

    created_at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=128)
    outcome = models.CharField(max_length=8)  # ok | warn | fail (worst scenario)
    summary = models.TextField()
    results = models.JSONField(default=list)
    inputs = models.JSONField(default=dict)
    run = models.ForeignKey(
        MaintenanceRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"stress test {self.created_at:%Y-%m-%d %H:%M} {self.outcome}"
