"""Per-instrument validation limits from the ``MARKETDATA_VALIDATION`` setting.

The domain (``apps.marketdata.domain.validation``) stays free of Django; this is the
one place that reads the setting (tradebot/settings/components/marketdata.py, which
already refused a bad value at start-up).
"""

from __future__ import annotations

from django.conf import settings

from apps.marketdata.domain.validation import DEFAULT_KEY, ValidationConfig, validation_configs


def validation_config_for(symbol: str) -> ValidationConfig:
    """The limits for ``symbol`` (``BTC-USDT``, ``AIG``): its entry over the default."""
    configs = validation_configs(getattr(settings, "MARKETDATA_VALIDATION", {}))
    return configs.get(symbol.strip().upper()) or configs.get(DEFAULT_KEY) or ValidationConfig()
