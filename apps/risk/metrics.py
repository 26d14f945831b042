"""Prometheus: the risk gauges, read from the database at scrape time.

Whichever process marked the equity (the engine) or changed the mode (web, a
worker, the CLI), the scrape reads the committed rows: EquityMonitor per account
(equity, drawdown, daily P&L, open positions), SystemState (one gauge per mode,
1 for the one in force) and the historical VaR of current holdings (cached).
Fractions stay fractions: trading_drawdown_pct 0.15 means 15 %.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

ACCOUNT_GAUGES = (
    ("trading_equity", "Equity marked to market (cash + positions at their last mark)"),
    ("trading_drawdown_pct", "Peak-to-trough drawdown of marked equity (fraction, 0.15 = 15%)"),
    ("trading_daily_pnl_pct", "P&L since the start of the trading day (fraction of that equity)"),
    ("trading_open_positions", "Positions not flat"),
    ("trading_var_95", "Historical 1-day VaR at 95% of current holdings (account currency)"),
    ("trading_var_99", "Historical 1-day VaR at 99% of current holdings (account currency)"),
)


class RiskCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        for name, _ in ACCOUNT_GAUGES:
            yield GaugeMetricFamily(name, "", labels=["account"])
        yield GaugeMetricFamily("trading_system_mode", "", labels=["mode"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError

        from apps.risk.domain.modes import SystemMode
        from apps.risk.models import EquityMonitor, SystemState

        families = {
            name: GaugeMetricFamily(name, text, labels=["account"]) for name, text in ACCOUNT_GAUGES
        }
        mode_family = GaugeMetricFamily(
            "trading_system_mode", "System mode: 1 for the mode in force", labels=["mode"]
        )
        try:
            state = SystemState.objects.filter(pk=1).values_list("mode", flat=True).first()
            current = state or SystemMode.NORMAL.value
            for mode in SystemMode:
                mode_family.add_metric([mode.value], 1.0 if mode.value == current else 0.0)
            for monitor in EquityMonitor.objects.select_related("account"):
                name = monitor.account.name
                families["trading_equity"].add_metric([name], float(monitor.equity))
                families["trading_drawdown_pct"].add_metric([name], float(monitor.drawdown))
                families["trading_daily_pnl_pct"].add_metric([name], float(monitor.daily_pnl_pct))
                families["trading_open_positions"].add_metric([name], monitor.open_positions)
                var = _var(monitor.account_id)
                families["trading_var_95"].add_metric([name], var[0])
                families["trading_var_99"].add_metric([name], var[1])
        except DatabaseError:
            logger.warning("risk metrics: database unavailable during scrape")
        yield from families.values()
        yield mode_family


def _var(account_id: int) -> tuple[float, float]:
    from apps.risk.selectors import var_and_correlation
    from apps.trading.models import Position

    holdings = {
        p.instrument.symbol: (p.instrument_id, (p.last_price or p.avg_price) * p.quantity)
        for p in Position.objects.filter(account_id=account_id)
        .exclude(quantity=0)
        .select_related("instrument")
    }
    if not holdings:
        return 0.0, 0.0
    var = var_and_correlation(holdings=holdings)["var"]
    return float(var["95"]), float(var["99"])
