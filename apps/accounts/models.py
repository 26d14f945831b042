"""Trading accounts: the cash, fees and P&L totals of one broker account.

A low layer: every app that trades, risks or reconciles points at ``Account``; this app
imports nothing but apps.core. The table keeps its original name, ``trading_account``
(the model moved here from apps.trading without touching the database).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from apps.core.fields import MoneyField


class Broker(models.TextChoices):
    PAPER = "paper", "paper simulator"
    KRAKEN = "kraken", "Kraken"
    IBKR = "ibkr", "Interactive Brokers"


class Account(models.Model):
    name = models.CharField(max_length=64, unique=True)
    broker = models.CharField(max_length=16, choices=Broker.choices, default=Broker.PAPER)
    currency = models.CharField(max_length=16, default="USD")
    starting_cash = MoneyField()
    cash = MoneyField(help_text="cash balance in the account currency")
    fees_paid = MoneyField(default=Decimal(0))
    realized_pnl = MoneyField(default=Decimal(0))
    peak_equity = MoneyField(help_text="highest equity marked so far (drawdown reference)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "trading_account"

    def __str__(self) -> str:
        return self.name
