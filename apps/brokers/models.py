"""Broker sessions (connectivity), reconciliation runs and the discrepancies they find."""

from __future__ import annotations

from django.db import models

from apps.brokers.domain.reconcile import DiscrepancyKind
from apps.model.venues import ConnectionState


class BrokerSession(models.Model):
    """What the execution worker knows about one account's broker connection.

    Written by the sync task (one sender per account, so no two writers race), read by
    the metrics collector, the panel and the healthcheck in any process.
    """

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, related_name="broker_session"
    )
    state = models.CharField(
        max_length=16,
        choices=[(s.value, s.value) for s in ConnectionState],
        default=ConnectionState.DISCONNECTED.value,
    )
    connected_since = models.DateTimeField(null=True, blank=True)
    disconnected_since = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    reconnect_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    fills_watermark = models.DateTimeField(
        null=True, blank=True, help_text="fills up to here were requested and applied"
    )
    alerted = models.BooleanField(default=False, help_text="the disconnect alert was raised")
    paused_trading = models.BooleanField(
        default=False, help_text="this disconnection paused trading (resumed after reconcile)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.account_id} {self.state}"


class ReconciliationTrigger(models.TextChoices):
    STARTUP = "startup", "start-up"
    SCHEDULE = "schedule", "schedule"
    COMMAND = "command", "command line"
    PANEL = "panel", "panel button"
    RECONNECT = "reconnect", "after a reconnect"


class ReconciliationOutcome(models.TextChoices):
    RUNNING = "running", "running"
    CLEAN = "clean", "clean"
    DISCREPANCIES = "discrepancies", "discrepancies"
    ERROR = "error", "error (broker unreachable)"


class ReconciliationRun(models.Model):
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="reconciliation_runs"
    )
    trigger = models.CharField(max_length=16, choices=ReconciliationTrigger.choices)
    actor = models.CharField(max_length=128)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=16,
        choices=ReconciliationOutcome.choices,
        default=ReconciliationOutcome.RUNNING,
        db_index=True,
    )
    orders_checked = models.PositiveIntegerField(default=0)
    positions_checked = models.PositiveIntegerField(default=0)
    fills_applied = models.PositiveIntegerField(default=0)
    orders_settled = models.PositiveIntegerField(default=0)
    discrepancies_found = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [models.Index(fields=["account", "-started_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.account_id} {self.trigger} {self.outcome}"


class DiscrepancyStatus(models.TextChoices):
    OPEN = "open", "open"
    ADOPTED = "adopted", "resolved: broker's state adopted"
    INVESTIGATED = "investigated", "resolved: marked investigated"
    CLEARED = "cleared", "no longer seen by a later run"


class Discrepancy(models.Model):
    """One difference between our books and the broker's, open until a 2FA admin resolves it."""

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="discrepancies"
    )
    kind = models.CharField(max_length=24, choices=[(k.value, k.value) for k in DiscrepancyKind])
    key = models.CharField(max_length=160, help_text="what it is about (stable across runs)")
    instrument = models.CharField(max_length=32, blank=True, default="")
    ours = models.TextField(help_text="our figure")
    broker = models.TextField(help_text="the broker's figure")
    detail = models.TextField()
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    first_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, related_name="discrepancies_opened"
    )
    last_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, related_name="discrepancies_seen"
    )
    status = models.CharField(
        max_length=16,
        choices=DiscrepancyStatus.choices,
        default=DiscrepancyStatus.OPEN,
        db_index=True,
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=128, blank=True, default="")
    resolution_note = models.TextField(blank=True, default="")
    incident = models.ForeignKey(
        "risk.Incident",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="discrepancies",
    )

    class Meta:
        ordering = ("-last_seen_at", "-id")
        verbose_name_plural = "discrepancies"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "key"],
                condition=models.Q(status="open"),
                name="discrepancy_open_unique_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.key} {self.status}"
