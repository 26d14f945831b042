"""The equity rules: each equity mark checked for drawdown and daily loss, alerts raised, a verdict returned."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.conf import settings
from django.db import transaction

from apps.accounts.models import Account
from apps.model.time import day_start, parse_day_boundary
from apps.notifications.services.alerts import alert_raise
from apps.risk.domain.metrics import (
    MonitorThresholds,
    MonitorVerdict,
    daily_pnl_pct,
    drawdown,
    equity_verdict,
)
from apps.risk.domain.modes import SystemMode
from apps.risk.exceptions import ModeChangeRefused
from apps.risk.models import EquityMonitor, ModeSource
from apps.risk.services.modes import system_mode_get, system_mode_set

logger = logging.getLogger(__name__)


RATIO_QUANTUM = Decimal("1e-8")


def monitor_thresholds() -> MonitorThresholds:
    return MonitorThresholds(
        drawdown_warn=settings.RISK_DRAWDOWN_WARN,
        drawdown_kill=settings.RISK_DRAWDOWN_KILL,
        daily_loss_warn=settings.RISK_DAILY_LOSS_WARN,
        daily_loss_pause=settings.RISK_DAILY_LOSS_PAUSE,
    )


def equity_observe(
    *, account_id: int, equity: Decimal, ts: datetime, open_positions: int
) -> MonitorVerdict:
    """Record one equity mark and apply the automatic rules (call outside a transaction).

    Drawdown (peak to trough of marked equity) > RISK_DRAWDOWN_WARN: warning alert;
    > RISK_DRAWDOWN_KILL: the verdict's mode is KILL, and the caller engages the kill
    switch (risk decides, trading acts: see ``apps.trading.services.marking``).
    Daily P&L against the equity at the start of the trading day (the day starts at
    RISK_DAY_BOUNDARY_UTC in market time, ``ts``: the bar time in a replay)
    < -RISK_DAILY_LOSS_WARN: warning; < -RISK_DAILY_LOSS_PAUSE: PAUSE (actor
    "rule:daily_loss"), once per trading day. The start-of-day equity is the last
    equity marked before the boundary (the first mark's when there is none).
    """
    boundary = parse_day_boundary(settings.RISK_DAY_BOUNDARY_UTC)
    today = day_start(ts, boundary)
    with transaction.atomic():
        monitor = EquityMonitor.objects.select_for_update().filter(account_id=account_id).first()
        if monitor is None:
            peak = Account.objects.values_list("peak_equity", flat=True).get(pk=account_id)
            monitor = EquityMonitor(
                account_id=account_id,
                ts=ts,
                equity=equity,
                peak_equity=max(peak, equity),
                day_start=today,
                day_start_equity=equity,
            )
        elif today != monitor.day_start:
            monitor.day_start = today
            monitor.day_start_equity = monitor.equity
        monitor.peak_equity = max(monitor.peak_equity, equity)
        monitor.equity = equity
        monitor.ts = ts
        monitor.open_positions = open_positions
        dd = drawdown(monitor.peak_equity, equity)
        daily = daily_pnl_pct(monitor.day_start_equity, equity)
        monitor.drawdown = dd.quantize(RATIO_QUANTUM, rounding=ROUND_HALF_EVEN)
        monitor.daily_pnl_pct = daily.quantize(RATIO_QUANTUM, rounding=ROUND_HALF_EVEN)
        verdict = equity_verdict(
            drawdown_pct=dd,
            daily_pct=daily,
            day=today.date(),
            mode=system_mode_get(),
            thresholds=monitor_thresholds(),
            daily_pause_done=monitor.daily_pause_day == today,
        )
        if verdict.mode is SystemMode.PAUSE:
            monitor.daily_pause_day = today
        monitor.save()
    if not verdict.alerts:
        return verdict
    numbers = {
        "account_id": account_id,
        "ts": ts.isoformat(),
        "equity": str(equity),
        "peak_equity": str(monitor.peak_equity),
        "drawdown": str(monitor.drawdown),
        "day_start_equity": str(monitor.day_start_equity),
        "daily_pnl_pct": str(monitor.daily_pnl_pct),
    }
    for alert in verdict.alerts:
        alert_raise(severity=alert.severity, code=alert.code, message=alert.message, data=numbers)
    if verdict.mode is SystemMode.PAUSE:
        try:
            system_mode_set(
                mode=SystemMode.PAUSE,
                actor="rule:daily_loss",
                source=ModeSource.RULE,
                reason=verdict.reason,
            )
        except ModeChangeRefused as exc:  # the mode changed meanwhile (e.g. KILL): keep it
            logger.warning("daily loss rule: pause refused: %s", exc.message)
    return verdict
