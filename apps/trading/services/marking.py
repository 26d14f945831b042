"""Marks to market, equity snapshots, and the risk rules that watch equity."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import transaction

from apps.accounts.models import Account
from apps.core import influx
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeSource
from apps.risk.services.monitoring import equity_observe
from apps.trading import realtime
from apps.trading.models import EquitySnapshot, Position
from apps.trading.services.common import money
from apps.trading.services.kill_switch import kill_switch_engage

logger = logging.getLogger(__name__)

DRAWDOWN_RULE_ACTOR = "rule:drawdown"


def mark_to_market(
    *,
    account: Account,
    prices: dict[str, Decimal],
    ts: datetime,
    snapshot: bool = True,
    monitor: bool = True,
) -> EquitySnapshot | None:
    """Update the marks of the account's positions and record an equity snapshot.

    Then, after the commit, the risk rules see the marked equity (``equity_observe``:
    drawdown and daily-loss alerts, automatic PAUSE) on every call; a KILL verdict
    (drawdown past RISK_DRAWDOWN_KILL) engages the kill switch here.
    """
    snap = None
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        positions = list(Position.objects.select_related("instrument").filter(account=account))
        for position in positions:
            price = prices.get(position.instrument.symbol)
            if price is not None and price != position.last_price:
                position.last_price = price
                position.save(update_fields=["last_price", "updated_at"])
        market_value = sum(
            ((p.last_price or p.avg_price) * p.quantity for p in positions), Decimal(0)
        )
        equity = money(account.cash + market_value)
        open_positions = sum(1 for p in positions if p.quantity)
        if snapshot:
            unrealized = sum((p.unrealized_pnl for p in positions), Decimal(0))
            if equity > account.peak_equity:
                account.peak_equity = equity
                account.save(update_fields=["peak_equity"])
            drawdown = (
                (account.peak_equity - equity) / account.peak_equity
                if account.peak_equity > 0
                else Decimal(0)
            )
            snap = EquitySnapshot.objects.create(
                account=account,
                ts=ts,
                equity=equity,
                cash=account.cash,
                realized_pnl=account.realized_pnl,
                unrealized_pnl=money(unrealized),
                fees=account.fees_paid,
                drawdown=drawdown.quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN),
            )
            transaction.on_commit(lambda: influx.write_equity(snap, positions=positions))
            realtime.broadcast_equity(snap, account)
            if positions:
                realtime.broadcast_positions(account)
    if monitor:
        verdict = equity_observe(
            account_id=account.pk, equity=equity, ts=ts, open_positions=open_positions
        )
        if verdict.mode is SystemMode.KILL:
            kill_switch_engage(
                actor=DRAWDOWN_RULE_ACTOR, source=ModeSource.RULE, reason=verdict.reason
            )
    return snap
