"""The hypothetical book of OBSERVATION: what the decisions would have traded, filled as
the paper broker would (next bar's open, paper slippage and fee)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from apps.model.values import Side
from apps.risk.domain.modes import SystemMode
from apps.risk.models import HypotheticalTrade, ModeChange
from apps.trading.services.common import money
from apps.trading.venues.paper import paper_fill_terms


def observation_started() -> ModeChange | None:
    """The ModeChange that started the OBSERVATION in force (None if none recorded)."""
    return ModeChange.objects.filter(to_mode=SystemMode.OBSERVATION.value).order_by("-id").first()


def hypothetical_position(*, account_id: int, instrument_id: int) -> Decimal:
    """Net quantity the current observation period would have traded (pending included)."""
    start = observation_started()
    total = Decimal(0)
    for side, quantity in HypotheticalTrade.objects.filter(
        account_id=account_id, instrument_id=instrument_id, observation=start
    ).values_list("side", "quantity"):
        total += quantity if side == "buy" else -quantity
    return total


def hypothetical_trade_record(
    *,
    account_id: int,
    instrument_id: int,
    decision_id: int,
    side: str,
    quantity: Decimal,
    price: Decimal,
    bar_ts: datetime,
) -> HypotheticalTrade:
    """Record what an OBSERVATION decision would have traded (filled at the next bar's open)."""
    return HypotheticalTrade.objects.create(
        account_id=account_id,
        instrument_id=instrument_id,
        observation=observation_started(),
        decision_id=decision_id,
        side=side,
        quantity=quantity,
        decision_price=price,
        decision_bar_ts=bar_ts,
    )


def hypothetical_fills_apply(*, bar: Any) -> int:
    """Fill the pending hypothetical trades of ``bar``'s instrument at its open.

    Same rule as the paper broker: a trade decided on an earlier bar fills at this
    bar's open, with the paper slippage and fee rate. Returns how many were filled.
    """
    pending = list(
        HypotheticalTrade.objects.filter(
            instrument__symbol=bar.instrument, fill_ts__isnull=True, decision_bar_ts__lt=bar.ts
        )
    )
    if not pending:
        return 0
    for trade in pending:
        price, fee = paper_fill_terms(bar.open, Side(trade.side), trade.quantity)
        trade.fill_price = money(price)
        trade.fill_ts = bar.ts
        trade.fee = money(fee)
    HypotheticalTrade.objects.bulk_update(pending, ["fill_price", "fill_ts", "fee"])
    return len(pending)
