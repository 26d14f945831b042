"""Append-only records: the decision log and the audit trail.

Both tables are protected by PostgreSQL itself: a trigger (migration 0002)
rejects every UPDATE and DELETE, whoever asks. Rows hold plain values (symbols,
client order ids), not foreign keys, so that nothing elsewhere can cascade into
them and a row reads the same forever.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models


class DecisionAction(models.TextChoices):
    BUY = "buy", "buy"
    SELL = "sell", "sell"
    WOULD_BUY = "would_buy", "would have bought (observation)"
    WOULD_SELL = "would_sell", "would have sold (observation)"
    DENIED = "denied", "denied by a pre-trade check"
    HOLD = "hold", "hold"


class CheckOutcome(models.TextChoices):
    PASSED = "passed", "all checks passed"
    FAILED = "failed", "a check failed"
    NONE = "none", "no order, no checks"


class DecisionLog(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    bar_ts = models.DateTimeField(help_text="open time of the bar the decision was made on")
    account = models.CharField(max_length=64)
    instrument = models.CharField(max_length=32)
    strategy = models.CharField(max_length=64)
    strategy_params = models.JSONField(default=dict)
    model_version = models.CharField(max_length=64, blank=True, default="")
    prediction_id = models.BigIntegerField(
        null=True, blank=True, help_text="ml.Prediction id behind an ML decision"
    )
    inputs = models.JSONField(default=dict, help_text="what the strategy saw (strings of decimals)")
    signal = models.CharField(max_length=32)
    mode = models.CharField(max_length=16)
    checks = models.JSONField(default=list, help_text="each pre-trade check with its numbers")
    check_result = models.CharField(max_length=8, choices=CheckOutcome.choices)
    failed_checks = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    action = models.CharField(max_length=16, choices=DecisionAction.choices)
    order_ids = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    source = models.CharField(max_length=32, default="engine")

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["instrument", "-bar_ts"]),
            models.Index(fields=["action", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.bar_ts:%Y-%m-%d %H:%M} {self.instrument} {self.signal} -> {self.action}"


class AuditEvent(models.Model):
    """Who did what, when, from where: every state change by a person or a rule."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=128, help_text="user:<name>, cli:<os user>, engine, ...")
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=128, blank=True, default="")
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"
