"""Reading trading plans: what the engine trades now, and a cheap version to poll."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from apps.engine.models import TradingPlan


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """One active plan as plain values (no ORM objects: safe to hand to another thread)."""

    id: int
    account_id: int
    account_name: str
    venue: str
    instrument: str  # the symbol, e.g. "BTC-USD"
    timeframe: str
    strategy: str
    params: dict[str, str] = field(hash=False)
    stake: Decimal
    created_at: datetime | None = None  # the strategy's warm-up is anchored here


def plan_list(*, account_id: int | None = None) -> QuerySet[TradingPlan]:
    """Every plan (active first), with account and instrument loaded: the panel's table."""
    qs = TradingPlan.objects.select_related("account", "instrument").order_by(
        "-active", "account__name", "instrument__symbol", "timeframe", "strategy", "id"
    )
    return qs if account_id is None else qs.filter(account_id=account_id)


def plans_active() -> list[PlanSpec]:
    """The active plans, by id, as ``PlanSpec`` values."""
    rows = (
        TradingPlan.objects.filter(active=True)
        .order_by("id")
        .values_list(
            "id",
            "account_id",
            "account__name",
            "venue",
            "instrument__symbol",
            "timeframe",
            "strategy",
            "params",
            "stake",
            "created_at",
        )
    )
    return [
        PlanSpec(
            id=pk,
            account_id=account_id,
            account_name=account_name,
            venue=venue,
            instrument=symbol,
            timeframe=timeframe,
            strategy=strategy,
            params={str(k): str(v) for k, v in (params or {}).items()},
            stake=stake,
            created_at=created_at,
        )
        for (
            pk,
            account_id,
            account_name,
            venue,
            symbol,
            timeframe,
            strategy,
            params,
            stake,
            created_at,
        ) in rows
    ]


def plans_version() -> str:
    """A token that changes whenever any plan is created, edited, (de)activated or deleted.

    ``<count>-<digest of every (id, updated_at)>``: one narrow index-friendly query. A
    digest rather than ``max(updated_at)``: a transaction that commits after a later one
    carries an older ``updated_at``, which a maximum would never show.
    """
    digest = hashlib.blake2b(digest_size=10)
    count = 0
    for pk, updated_at in TradingPlan.objects.order_by("id").values_list("id", "updated_at"):
        digest.update(f"{pk}:{updated_at.isoformat()};".encode())
        count += 1
    return f"{count}-{digest.hexdigest()}"
