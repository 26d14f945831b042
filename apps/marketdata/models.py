"""Instruments, stored bars and per-feed freshness."""

from __future__ import annotations

from django.db import models

from apps.core.fields import PriceField, QuantityField


class AssetClass(models.TextChoices):
    CRYPTO = "crypto", "crypto"
    EQUITY = "equity", "equity"


class Instrument(models.Model):
    symbol = models.CharField(max_length=32, unique=True, help_text="BASE-QUOTE or ticker")
    base = models.CharField(max_length=16)
    quote = models.CharField(max_length=16)
    asset_class = models.CharField(
        max_length=8, choices=AssetClass.choices, default=AssetClass.CRYPTO
    )
    tick_size = PriceField(null=True, blank=True, help_text="price increment; empty = any")
    lot_size = QuantityField(null=True, blank=True, help_text="quantity increment; empty = any")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ("symbol",)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tick_size__isnull=True) | models.Q(tick_size__gt=0),
                name="instrument_tick_size_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(lot_size__isnull=True) | models.Q(lot_size__gt=0),
                name="instrument_lot_size_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.symbol


class Bar(models.Model):
    """One OHLCV bar; ``ts`` is the bar's open time (UTC).

    The primary key is (instrument, timeframe, ts), which a TimescaleDB
    hypertable partitioned on ``ts`` accepts (migration 0002 converts the table
    when the extension exists, and adds a BRIN index on ``ts`` otherwise).
    """

    pk = models.CompositePrimaryKey("instrument_id", "timeframe", "ts")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="bars")
    timeframe = models.CharField(max_length=8)
    ts = models.DateTimeField()
    open = PriceField()
    high = PriceField()
    low = PriceField()
    close = PriceField()
    volume = QuantityField()

    class Meta:
        ordering = ("instrument_id", "timeframe", "ts")

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.timeframe} {self.ts:%Y-%m-%d %H:%M}"


class FeedStatus(models.Model):
    """Freshness and counters of one market-data feed (``data_feed_last_update``)."""

    feed = models.CharField(max_length=64, unique=True)
    last_update = models.DateTimeField(
        null=True, blank=True, help_text="wall time of the last good bar"
    )
    last_bar_ts = models.DateTimeField(null=True, blank=True)
    bars_accepted = models.BigIntegerField(default=0)
    bars_rejected = models.BigIntegerField(default=0)
    rejections = models.JSONField(default=dict, help_text="rejected rows by reason")

    class Meta:
        verbose_name_plural = "feed statuses"

    def __str__(self) -> str:
        return self.feed
