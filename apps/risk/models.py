"""The persisted system mode and the per-account risk limits."""

from __future__ import annotations

from django.db import models

from apps.core.fields import MoneyField
from apps.risk.domain.modes import SystemMode as Mode


class ModeSource(models.TextChoices):
    PANEL = "panel", "control panel"
    API = "api", "JSON endpoint"
    CLI = "cli", "command line"
    TELEGRAM = "telegram", "Telegram"
    RULE = "rule", "automatic rule"
    SYSTEM = "system", "system"


class SystemState(models.Model):
    """The one current system mode (a single row, pk=1). History is in ModeChange."""

    mode = models.CharField(
        max_length=16, choices=[(m.value, m.value) for m in Mode], default=Mode.NORMAL.value
    )
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.CharField(max_length=128, default="system")
    reason = models.TextField(blank=True, default="")
    source = models.CharField(max_length=16, choices=ModeSource.choices, default=ModeSource.SYSTEM)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="system_state_singleton")
        ]

    def __str__(self) -> str:
        return self.mode


class ModeChange(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    from_mode = models.CharField(max_length=16)
    to_mode = models.CharField(max_length=16)
    actor = models.CharField(max_length=128)
    source = models.CharField(max_length=16, choices=ModeSource.choices)
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.from_mode} -> {self.to_mode} by {self.actor}"


class RiskLimit(models.Model):
    """Risk policy for one account, capped by the settings ceilings (RISK_CEILING_*)."""

    account = models.OneToOneField(
        "trading.Account", on_delete=models.CASCADE, related_name="risk_limit"
    )
    max_order_notional = MoneyField()
    max_position_notional = MoneyField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_order_notional__gt=0),
                name="risk_max_order_notional_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(max_position_notional__gt=0),
                name="risk_max_position_notional_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"limits for {self.account_id}"
