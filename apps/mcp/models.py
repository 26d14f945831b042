"""AI agents as principals of the MCP servers, and the trading server's confirmation tickets."""

from __future__ import annotations

from django.db import models

from apps.accounts.models import Account
from apps.core.fields import MoneyField, QuantityField
from apps.marketdata.models import Instrument
from apps.trading.models import Order


class Scope(models.TextChoices):
    MARKET_READ = "market:read", "read market data, positions and the decision log"
    ORDERS_PREVIEW = "orders:preview", "preview orders (runs the checks, places nothing)"
    ORDERS_SUBMIT = "orders:submit", "confirm previewed orders, cancel orders"
    CONTROL_PAUSE = "control:pause", "request PAUSE, engage the kill switch"


class McpAgent(models.Model):
    """One AI agent: its bearer token (only the SHA-256 is kept), scopes and own limits.

    The limits apply on top of the account's RiskLimit (an agent can only be stricter):
    ``max_order_notional`` (None: the account's alone), ``max_orders_per_minute``
    (confirmed orders), ``instruments`` (symbols; empty: every instrument).
    ``paper_only`` (the default) refuses orders on any account that is not a paper one.
    """

    name = models.CharField(max_length=64, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the token")
    token_prefix = models.CharField(
        max_length=12, help_text="first characters, to tell tokens apart"
    )
    scopes = models.JSONField(default=list)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="mcp_agents")
    max_order_notional = MoneyField(null=True, blank=True)
    max_orders_per_minute = models.PositiveIntegerField(default=5)
    instruments = models.JSONField(default=list, blank=True)
    paper_only = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=128, blank=True, default="")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def actor(self) -> str:
        return f"mcp:{self.name}"


class McpTicket(models.Model):
    """A previewed order's single-use confirmation: bound to the agent, the exact order and
    a short TTL; once confirmed it points at what the confirm produced (a retry returns it)."""

    token_hash = models.CharField(max_length=64, unique=True)
    agent = models.ForeignKey(McpAgent, on_delete=models.PROTECT, related_name="tickets")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4)
    quantity = QuantityField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    verdict = models.CharField(max_length=32, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The decision log is append-only (trigger-protected, truncated only by its owner): a plain
    # id, not a foreign key that would tie its table to this one (as ml.Prediction does).
    decision_id = models.BigIntegerField(null=True, blank=True, help_text="audit.DecisionLog id")

    def __str__(self) -> str:
        return f"{self.agent_id} {self.side} {self.quantity} {self.instrument_id}"
