"""Run the engine over bars with restarts (a new Engine: all state from the database)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from apps.accounts.models import Account
from apps.audit.models import DecisionLog
from apps.engine.runner import Engine, EnginePlan
from apps.model.bars import Bar
from apps.strategies.domain.registry import build_strategy
from apps.trading.models import Order

SMA_PARAMS = {"fast": "10", "slow": "30"}


def sma_plan(account, instrument: str) -> EnginePlan:
    return EnginePlan(
        key=f"sma-{instrument}",
        account=account,
        instrument=instrument,
        timeframe="1m",
        strategy_name="sma_cross",
        strategy_params=SMA_PARAMS,
        stake=Decimal("1000"),
        strategy_factory=lambda: build_strategy("sma_cross", SMA_PARAMS),
    )


def renamed(bars: Sequence[Bar], instrument: str) -> list[Bar]:
    """The same bars under another instrument name (two runs that share no state)."""
    return [replace(b, instrument=instrument) for b in bars]


def run(plan: EnginePlan, bars: Sequence[Bar], restarts: Sequence[int] = ()) -> int:
    """Process ``bars`` with a fresh engine at each index of ``restarts``; each engine is
    handed every bar from the start, as a feed replaying too much would (it must skip
    what is stored). Returns the number of engines used."""
    cuts = [*sorted(restarts), len(bars)]
    for cut in cuts:
        Engine(plans=[plan]).run(bars[:cut])
    return len(cuts)


def decisions(account: Account) -> list[tuple]:
    """What was decided, bar by bar (signal, action, probability, order quantities),
    comparable across accounts and instrument names."""
    rows = DecisionLog.objects.filter(account=account.name).order_by("bar_ts", "id")
    return [
        (
            d.bar_ts,
            d.signal,
            d.action,
            d.inputs.get("probability"),
            [Order.objects.get(client_order_id=c).quantity for c in d.order_ids],
        )
        for d in rows
    ]
