"""Notifications and their deliveries, the channels' health, the Alertmanager heartbeat,
and the alerts (the conditions shown on the panel until resolved; table risk_alert)."""

from __future__ import annotations

from django.db import models

from apps.notifications.domain.routing import Channel, Severity


class Notification(models.Model):
    """Something a person should hear about. One row per event; a repeat of the same
    ``dedup_key`` inside NOTIFY_DEDUP_WINDOW_SECONDS bumps ``occurrences`` instead."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    severity = models.CharField(max_length=8, choices=[(s.value, s.value) for s in Severity])
    code = models.CharField(max_length=96, db_index=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    dedup_key = models.CharField(max_length=200, blank=True, default="", db_index=True)
    data = models.JSONField(default=dict, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    last_occurred_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["dedup_key", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.severity} {self.code}: {self.title}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"  # stored, waiting for its task
    SENDING = "sending", "sending"  # a task is sending it now
    RETRYING = "retrying", "retrying"  # a temporary failure; a retry is scheduled
    SENT = "sent", "sent"
    FAILED = "failed", "failed"  # permanent failure, or retries exhausted
    SKIPPED = "skipped", "skipped"  # the channel is not configured
    RATE_LIMITED = "rate_limited", "rate limited"  # over the channel's rate: dropped
    SUPPRESSED = "suppressed", "suppressed"  # the channel is disabled (bad credentials)


OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


class Delivery(models.Model):
    """One notification on one channel: its status, attempts and last error."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=16, choices=[(c.value, c.value) for c in Channel])
    status = models.CharField(
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        db_index=True,
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel"], name="delivery_one_per_channel"
            )
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.channel} {self.status} (#{self.notification_id})"


class ChannelState(models.Model):
    """A channel disabled after its provider refused our credentials.

    ``config_fingerprint`` is a hash of the channel's settings when it was disabled: a
    changed setting (new token, password, URL) enables it again at once; otherwise it
    stays disabled until ``disabled_until``.
    """

    channel = models.CharField(
        max_length=16, unique=True, choices=[(c.value, c.value) for c in Channel]
    )
    disabled_until = models.DateTimeField(null=True, blank=True)
    config_fingerprint = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    reported_fingerprint = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.channel} disabled until {self.disabled_until}"


class WatchdogHeartbeat(models.Model):
    """The last Watchdog alert Alertmanager delivered (a single row, pk=1).

    ``created_at`` is when the app first looked: a pipeline never heard from is stale
    once ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS has passed since then.
    """

    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    receiver = models.CharField(max_length=128, blank=True, default="")
    beats = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="watchdog_heartbeat_singleton")
        ]

    def __str__(self) -> str:
        return f"watchdog last seen {self.last_seen_at}"


class AlertSeverity(models.TextChoices):
    INFO = "info", "info"
    WARNING = "warning", "warning"
    ERROR = "error", "error"
    CRITICAL = "critical", "critical"


class Alert(models.Model):
    """A condition someone should see; one open alert per code (deduplicated)."""

    severity = models.CharField(max_length=8, choices=AlertSeverity.choices)
    code = models.CharField(max_length=96)
    message = models.TextField()
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        db_table = "risk_alert"  # its table from when it lived in the risk app
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["code"],
                condition=models.Q(resolved_at__isnull=True),
                name="alert_one_open_per_code",
            )
        ]

    def __str__(self) -> str:
        return f"{self.severity} {self.code}"
