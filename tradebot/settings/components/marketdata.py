"""Market-data validation limits, per instrument (apps.marketdata.config).

``MARKETDATA_VALIDATION`` is JSON: a ``"default"`` entry and per-symbol overrides of
it, each a mapping of ``ValidationConfig`` fields (apps/marketdata/domain/
validation.py): ``max_future_skew`` (seconds), ``max_move_pct`` (40 = a move of up to
41x either way), ``volatility_multiple`` (null = off, e.g. 250), ``volatility_window``,
``volatility_min_bars``. Example::

    MARKETDATA_VALIDATION={"default": {"max_move_pct": 40},
                           "BTC-USDT": {"volatility_multiple": 250}}

Every entry is parsed here, so a bad key or value stops the start naming it.
"""

import json

from django.core.exceptions import ImproperlyConfigured

from apps.marketdata.domain.validation import validation_settings_problems
from tradebot.env import env

_raw = env.str("MARKETDATA_VALIDATION", default="").strip()
try:
    MARKETDATA_VALIDATION = json.loads(_raw) if _raw else {"default": {}}
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(
        f"MARKETDATA_VALIDATION is not valid JSON ({exc}): give e.g. "
        '{"default": {"max_move_pct": 40}, "AIG": {"max_move_pct": 60}}'
    ) from None
_problems = validation_settings_problems(MARKETDATA_VALIDATION)
if _problems:
    raise ImproperlyConfigured("MARKETDATA_VALIDATION: " + "; ".join(_problems))
