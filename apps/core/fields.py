"""Decimal column shapes shared by every money/price/quantity field."""

from __future__ import annotations

from typing import Any

from django.db import models


def PriceField(**kwargs: Any) -> models.DecimalField:  # noqa: N802 - field factory
    """Prices: up to 10^15 with 12 decimals (crypto pairs quote in 1e-8 and below)."""
    return models.DecimalField(max_digits=28, decimal_places=12, **kwargs)


def QuantityField(**kwargs: Any) -> models.DecimalField:  # noqa: N802
    return models.DecimalField(max_digits=30, decimal_places=12, **kwargs)


def MoneyField(**kwargs: Any) -> models.DecimalField:  # noqa: N802
    return models.DecimalField(max_digits=30, decimal_places=12, **kwargs)
