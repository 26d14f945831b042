"""Risk reads: incidents, alerts, VaR and correlations of given holdings. (The pre-trade
context and the risk overview read trading's books: they live in apps.trading.selectors.)"""

from __future__ import annotations

import time as _time
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.marketdata.selectors import daily_closes
from apps.risk.domain.metrics import (
    align_daily_closes,
    correlation_matrix,
    historical_var,
)
from apps.risk.models import Incident

_ZERO = Decimal(0)
_MONEY = Decimal("1e-12")
_RATIO = Decimal("1e-8")
VAR_CACHE_SECONDS = 60.0
_var_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}


# --- lists --------------------------------------------------------------------------------


def incident_list() -> list[Incident]:
    """Every incident, newest first, with the mode change that opened it."""
    return list(Incident.objects.select_related("mode_change").order_by("-opened_at", "-id"))


def var_and_correlation(*, holdings: dict[str, tuple[int, Decimal]]) -> dict[str, Any]:
    """Historical 1-day VaR 95/99 and the correlation matrix of the held instruments.

    ``holdings``: symbol -> (instrument id, signed market value). Cached for
    VAR_CACHE_SECONDS per set of holdings (it reads many bars).
    """
    window = settings.RISK_VAR_WINDOW_DAYS
    key = (tuple(sorted((s, str(v)) for s, (_, v) in holdings.items())), window)
    cached = _var_cache.get(key)
    if cached is not None and _time.monotonic() - cached[0] < VAR_CACHE_SECONDS:
        return cached[1]
    ids = {symbol: inst_id for symbol, (inst_id, _) in holdings.items()}
    closes_by_id = daily_closes(instrument_ids=list(ids.values()), days=window)
    series = {symbol: closes_by_id.get(inst_id, {}) for symbol, inst_id in ids.items()}
    _, aligned = align_daily_closes(series)
    values = {symbol: value for symbol, (_, value) in holdings.items()}
    result = {
        "var": {
            "95": str(
                historical_var(holdings=values, daily_closes=aligned, confidence=Decimal("0.95"))
            ),
            "99": str(
                historical_var(holdings=values, daily_closes=aligned, confidence=Decimal("0.99"))
            ),
            "window_days": window,
            "observations": max(0, min((len(c) for c in aligned.values()), default=0) - 1),
        },
    }
    instruments, matrix = correlation_matrix(aligned)
    result["correlation"] = {"instruments": instruments, "matrix": matrix}
    if len(_var_cache) > 64:
        _var_cache.clear()
    _var_cache[key] = (_time.monotonic(), result)
    return result
