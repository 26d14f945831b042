"""The persisted system mode and the per-account risk limits."""

from __future__ import annotations

from django.db import models

from apps.core.fields import MoneyField, PriceField, QuantityField
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
        "accounts.Account", on_delete=models.CASCADE, related_name="risk_limit"
    )
    max_order_notional = MoneyField()
    max_position_notional = MoneyField()
    # Empty = the settings ceiling applies (RISK_CEILING_*).
    max_gross_exposure = MoneyField(null=True, blank=True)
    max_open_positions = models.PositiveIntegerField(null=True, blank=True)
    price_collar_pct = models.DecimalField(
        max_digits=10, decimal_places=6, null=True, blank=True, help_text="fraction: 0.05 = 5 %"
    )
    max_orders_per_minute = models.PositiveIntegerField(null=True, blank=True)
    duplicate_window_seconds = models.PositiveIntegerField(null=True, blank=True)
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


class IncidentStatus(models.TextChoices):
    OPEN = "open", "open"
    CLOSED = "closed", "closed"


class Incident(models.Model):
    """The report a KILL opens; leaving KILL needs it written and closed (services only)."""

    mode_change = models.ForeignKey(
        ModeChange, on_delete=models.PROTECT, null=True, blank=True, related_name="incidents"
    )
    title = models.CharField(max_length=200)
    what_happened = models.TextField(blank=True, default="")
    cause = models.TextField(blank=True, default="")
    action_taken = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=8, choices=IncidentStatus.choices, default=IncidentStatus.OPEN, db_index=True
    )
    opened_at = models.DateTimeField(auto_now_add=True)
    opened_by = models.CharField(max_length=128)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=128, blank=True, default="")
    kill_report = models.JSONField(default=dict, help_text="what the kill switch did")

    class Meta:
        ordering = ("-opened_at", "-id")

    def __str__(self) -> str:
        return f"#{self.pk} {self.status} {self.title}"


class EquityMonitor(models.Model):
    """The latest marked equity of an account and the risk rules' references.

    ``peak_equity`` is the drawdown reference of the rules (restarted when KILL is
    left, so the drawdown that caused a KILL does not trigger it again at once);
    ``day_start_equity`` is the equity at the start of the trading day ``day_start``.
    """

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, related_name="equity_monitor"
    )
    ts = models.DateTimeField(help_text="market time of the last mark")
    equity = MoneyField()
    peak_equity = MoneyField()
    drawdown = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    day_start = models.DateTimeField()
    day_start_equity = MoneyField()
    daily_pnl_pct = models.DecimalField(max_digits=12, decimal_places=8, default=0)
    daily_pause_day = models.DateTimeField(
        null=True, blank=True, help_text="trading day on which the daily-loss rule paused"
    )
    open_positions = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.account_id} {self.equity} dd={self.drawdown}"


class HypotheticalTrade(models.Model):
    """What an OBSERVATION decision would have traded: filled at the next bar's open.

    ``observation`` is the ModeChange that started the observation period, so the
    hypothetical book of one period does not leak into the decisions of another.
    """

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="hypothetical_trades"
    )
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="hypothetical_trades"
    )
    observation = models.ForeignKey(
        ModeChange, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision_id = models.BigIntegerField(help_text="DecisionLog id")
    side = models.CharField(max_length=4)
    quantity = QuantityField()
    decision_price = PriceField()
    decision_bar_ts = models.DateTimeField()
    fill_price = PriceField(null=True, blank=True)
    fill_ts = models.DateTimeField(null=True, blank=True)
    fee = MoneyField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("decision_bar_ts", "id")
        indexes = [
            models.Index(
                fields=["instrument"],
                condition=models.Q(fill_ts__isnull=True),
                name="hypo_trade_pending",
            )
        ]

    def __str__(self) -> str:
        return f"would {self.side} {self.quantity} {self.instrument_id}"
