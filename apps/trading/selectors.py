"""Trading reads: what the panel shows on first load (then events keep it live)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.audit.models import DecisionLog
from apps.core.realtime import jsonable
from apps.marketdata.models import FeedStatus
from apps.marketdata.services import feed_payload
from apps.risk.services import system_state_get
from apps.trading import realtime
from apps.trading.models import Account, EquitySnapshot, Fill, Order

EQUITY_HISTORY_POINTS = 500
RECENT = 20


def overview_snapshot(account_name: str | None = None) -> dict[str, Any]:
    """The overview's initial state, in the same shapes as the live events (JSON-ready)."""
    name = account_name or settings.ENGINE_ACCOUNT
    account = Account.objects.filter(name=name).first()
    snapshot: dict[str, Any] = {
        "account": name,
        "mode": system_state_get().mode,
        "equity": None,
        "equity_history": [],
        "positions": [],
        "orders": [],
        "fills": [],
        "decisions": [
            realtime.decision_payload(d)
            for d in DecisionLog.objects.filter(account=name).order_by("-created_at", "-id")[
                :RECENT
            ]
        ],
        "feeds": [feed_payload(f) for f in FeedStatus.objects.order_by("feed")],
    }
    if account is not None:
        history = list(
            EquitySnapshot.objects.filter(account=account).order_by("-ts", "-id")[
                :EQUITY_HISTORY_POINTS
            ]
        )
        if history:
            snapshot["equity"] = realtime.equity_payload(history[0], account)
        snapshot["equity_history"] = [
            {"ts": s.ts, "equity": s.equity, "drawdown": s.drawdown} for s in reversed(history)
        ]
        snapshot["positions"] = [
            realtime.position_payload(p)
            for p in account.positions.select_related("instrument").order_by("instrument__symbol")
        ]
        snapshot["fills"] = [
            realtime.fill_payload(f, f.order)
            for f in Fill.objects.filter(account=account).select_related("order__instrument")[
                :RECENT
            ]
        ]
        snapshot["orders"] = [
            realtime.order_payload(o)
            for o in Order.objects.filter(account=account).select_related("instrument")[:RECENT]
        ]
    return jsonable(snapshot)
