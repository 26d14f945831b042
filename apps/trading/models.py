"""Orders, fills, positions and equity: thin ORM around apps.trading.domain.

The accounts they belong to are apps.accounts.models.Account.

Fields we own (intent) and fields the broker reports are kept apart:
``client_order_id`` is ours and unique in the database (the idempotency key of
every send), ``broker_order_id`` and ``Fill.trade_id`` come from the broker.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from apps.accounts.models import Account
from apps.core.fields import MoneyField, PriceField, QuantityField
from apps.model.orders import OrderStatus as DomainOrderStatus

ORDER_STATUS_CHOICES = [(s.value, s.value) for s in DomainOrderStatus]


class Order(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="orders"
    )
    client_order_id = models.CharField(max_length=64, unique=True)
    broker_order_id = models.CharField(max_length=64, null=True, blank=True)
    side = models.CharField(max_length=4, choices=[("buy", "buy"), ("sell", "sell")])
    order_type = models.CharField(max_length=8, choices=[("market", "market"), ("limit", "limit")])
    quantity = QuantityField()
    limit_price = PriceField(null=True, blank=True)
    decision_price = PriceField(null=True, blank=True, help_text="price the decision was made at")
    reduce_only = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=ORDER_STATUS_CHOICES, db_index=True)
    filled_quantity = QuantityField(default=Decimal(0))
    avg_fill_price = PriceField(null=True, blank=True)
    fees = MoneyField(default=Decimal(0))
    status_reason = models.TextField(blank=True, default="")
    decision_bar_ts = models.DateTimeField(
        null=True, blank=True, help_text="bar the decision was made on"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        # Orders of the last day at every /metrics scrape (apps/trading/metrics.py).
        indexes = [models.Index(fields=["created_at"], name="order_created_at_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "broker_order_id"],
                condition=models.Q(broker_order_id__isnull=False),
                name="order_broker_id_unique_per_account",
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="order_quantity_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(filled_quantity__gte=0)
                & models.Q(filled_quantity__lte=models.F("quantity")),
                name="order_filled_within_quantity",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.client_order_id} {self.side} {self.quantity} {self.instrument_id} {self.status}"
        )

    # Execution quality, per order (aggregated for Prometheus by apps.trading.metrics).
    @property
    def fill_rate(self) -> Decimal:
        """Filled fraction of the ordered quantity (0..1)."""
        return self.filled_quantity / self.quantity if self.quantity else Decimal(0)

    @property
    def slippage_bps(self) -> Decimal | None:
        """Average fill price against the decision price, in basis points; positive = a cost
        (paid more on a buy, received less on a sell). None until filled or without a decision
        price."""
        if not self.decision_price or self.avg_fill_price is None:
            return None
        move = (self.avg_fill_price - self.decision_price) / self.decision_price * 10_000
        return (move if self.side == "buy" else -move).quantize(Decimal("0.01"))


class Fill(models.Model):
    """A broker execution, applied exactly once: (account, trade_id) is unique."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    trade_id = models.CharField(max_length=96)
    side = models.CharField(max_length=4)
    quantity = QuantityField()
    price = PriceField()
    fee = MoneyField()
    realized_pnl = MoneyField(default=Decimal(0), help_text="realized by this fill, before fees")
    ts = models.DateTimeField(help_text="execution time reported by the broker")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-ts", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "trade_id"], name="fill_trade_id_unique_per_account"
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="fill_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trade_id} {self.side} {self.quantity} @ {self.price}"


class Position(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    instrument = models.ForeignKey(
        "marketdata.Instrument", on_delete=models.PROTECT, related_name="positions"
    )
    quantity = QuantityField(default=Decimal(0), help_text="signed: negative is short")
    avg_price = PriceField(default=Decimal(0))
    realized_pnl = MoneyField(default=Decimal(0))
    fees = MoneyField(default=Decimal(0))
    last_price = PriceField(null=True, blank=True, help_text="last mark")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("account_id", "instrument_id")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"], name="position_unique_per_instrument"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.instrument_id} {self.quantity}"

    @property
    def unrealized_pnl(self) -> Decimal:
        if self.last_price is None or not self.quantity:
            return Decimal(0)
        return (self.last_price - self.avg_price) * self.quantity


class EquitySnapshot(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="equity_snapshots")
    ts = models.DateTimeField(help_text="market time the snapshot marks (bar time in replay)")
    created_at = models.DateTimeField(auto_now_add=True)
    equity = MoneyField()
    cash = MoneyField()
    realized_pnl = MoneyField()
    unrealized_pnl = MoneyField()
    fees = MoneyField()
    drawdown = models.DecimalField(
        max_digits=12, decimal_places=8, help_text="fraction of the peak"
    )

    class Meta:
        ordering = ("account_id", "-ts", "-id")
        indexes = [models.Index(fields=["account", "-ts"])]

    def __str__(self) -> str:
        return f"{self.account_id} {self.ts:%Y-%m-%d %H:%M} {self.equity}"


# --- the paper broker's own book ----------------------------------------------------------
#
# The paper venue (apps.trading.venues.paper) keeps what a real broker would keep, in its
# own tables: its orders, its executions, its positions and its cash. It never reads our
# Order, Fill, Position or Account.cash to answer a query, so reconciliation against it
# finds a doctored row on either side as it would at a real broker. Written only by the
# paper venue; the admin shows them read-only (the broker's view).

PAPER_ORDER_STATUS_CHOICES = [
    (s.value, s.value)
    for s in (
        DomainOrderStatus.ACCEPTED,
        DomainOrderStatus.PARTIALLY_FILLED,
        DomainOrderStatus.FILLED,
        DomainOrderStatus.CANCELED,
    )
]


class PaperAccount(models.Model):
    """The paper broker's account of one of our accounts: its cash, from the starting cash."""

    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="paper_book")
    currency = models.CharField(max_length=16)
    cash = MoneyField(help_text="the paper broker's cash balance")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"paper book of {self.account_id}: {self.cash} {self.currency}"


class PaperOrder(models.Model):
    """An order as the paper broker holds it (one per client order id)."""

    account = models.ForeignKey(PaperAccount, on_delete=models.PROTECT, related_name="orders")
    broker_order_id = models.CharField(max_length=64, unique=True)
    client_order_id = models.CharField(max_length=64)
    instrument = models.CharField(max_length=32, help_text="our symbol, e.g. BTC-USD")
    side = models.CharField(max_length=4, choices=[("buy", "buy"), ("sell", "sell")])
    order_type = models.CharField(max_length=8, choices=[("market", "market"), ("limit", "limit")])
    quantity = QuantityField()
    limit_price = PriceField(null=True, blank=True)
    filled_quantity = QuantityField(default=Decimal(0))
    avg_fill_price = PriceField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=PAPER_ORDER_STATUS_CHOICES)
    eligible_after = models.DateTimeField(
        help_text="fills only on bars that open after this (the decision bar)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [
            models.Index(fields=["instrument", "status"], name="paperorder_instrument_status"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"], name="paperorder_client_id_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="paperorder_quantity_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(filled_quantity__gte=0)
                & models.Q(filled_quantity__lte=models.F("quantity")),
                name="paperorder_filled_within_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.broker_order_id} {self.side} {self.quantity} {self.instrument} {self.status}"


class PaperFill(models.Model):
    """An execution the paper broker made; each trade id is booked once."""

    account = models.ForeignKey(PaperAccount, on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(PaperOrder, on_delete=models.PROTECT, related_name="fills")
    trade_id = models.CharField(max_length=96, unique=True)
    side = models.CharField(max_length=4)
    quantity = QuantityField()
    price = PriceField()
    fee = MoneyField()
    ts = models.DateTimeField(help_text="execution time (the bar's open, or the kill mark's)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("ts", "id")
        indexes = [models.Index(fields=["account", "ts"], name="paperfill_account_ts")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="paperfill_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trade_id} {self.side} {self.quantity} @ {self.price}"


class PaperPosition(models.Model):
    """The paper broker's position in one instrument (signed, average cost)."""

    account = models.ForeignKey(PaperAccount, on_delete=models.PROTECT, related_name="positions")
    instrument = models.CharField(max_length=32)
    quantity = QuantityField(default=Decimal(0), help_text="signed: negative is short")
    avg_price = PriceField(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("account_id", "instrument")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"], name="paperposition_unique_per_instrument"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.instrument} {self.quantity}"


class PaperClock(models.Model):
    """The last bar of an instrument the paper broker matched for an account: a bar at or
    before it is not matched again (a bar processed twice books nothing twice)."""

    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="clocks")
    instrument = models.CharField(max_length=32)
    last_bar_ts = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"], name="paperclock_unique_per_instrument"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.instrument} matched through {self.last_bar_ts}"
