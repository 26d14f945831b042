"""Prometheus: the risk gauges, read from the database at scrape time.

Whichever process marked the equity (the engine) or changed the mode (web, a
worker, the CLI), the scrape reads the committed rows: EquityMonitor per account
(equity, drawdown, daily P&L, open positions), SystemState (one gauge per mode,
1 for the one in force) and the historical VaR of current holdings (cached), with the
exposures (gross, net, per instrument: market value at the last mark, signed) and the
correlations of the held instruments' daily returns that the same holdings give.
Fractions stay fractions: trading_drawdown_pct 0.15 means 15 %.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

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
    ("trading_gross_exposure", "Sum of the absolute market values of open positions"),
    ("trading_net_exposure", "Sum of the signed market values of open positions"),
)


class RiskCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        for name, _ in ACCOUNT_GAUGES:
            yield GaugeMetricFamily(name, "", labels=["account"])
        yield GaugeMetricFamily("trading_system_mode", "", labels=["mode"])
        yield GaugeMetricFamily("trading_exposure", "", labels=["account", "instrument"])
        yield GaugeMetricFamily("trading_correlation", "", labels=["account", "a", "b"])

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
        exposure = GaugeMetricFamily(
            "trading_exposure",
            "Signed market value of each open position at its last mark (account currency)",
            labels=["account", "instrument"],
        )
        correlation = GaugeMetricFamily(
            "trading_correlation",
            "Correlation of the daily returns of two held instruments (VaR window)",
            labels=["account", "a", "b"],
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
                holdings, risk = _holdings_risk(monitor.account_id)
                var = risk["var"]
                families["trading_var_95"].add_metric([name], float(var["95"]))
                families["trading_var_99"].add_metric([name], float(var["99"]))
                gross = net = 0.0
                for symbol, (_, value) in sorted(holdings.items()):
                    exposure.add_metric([name, symbol], float(value))
                    gross += abs(float(value))
                    net += float(value)
                families["trading_gross_exposure"].add_metric([name], gross)
                families["trading_net_exposure"].add_metric([name], net)
                instruments = risk["correlation"]["instruments"]
                for i, row in enumerate(risk["correlation"]["matrix"]):
                    for j, value in enumerate(row):
                        if value is not None:
                            correlation.add_metric(
                                [name, instruments[i], instruments[j]], float(value)
                            )
        except DatabaseError:
            logger.warning("risk metrics: database unavailable during scrape")
        yield from families.values()
        yield mode_family
        yield exposure
        yield correlation


_NO_RISK = {"var": {"95": "0", "99": "0"}, "correlation": {"instruments": [], "matrix": []}}


def _holdings_risk(account_id: int) -> tuple[dict[str, tuple[int, Decimal]], dict[str, Any]]:
    from apps.risk.selectors import var_and_correlation
    from apps.trading.models import Position

    holdings = {
        p.instrument.symbol: (p.instrument_id, (p.last_price or p.avg_price) * p.quantity)
        for p in Position.objects.filter(account_id=account_id)
        .exclude(quantity=0)
        .select_related("instrument")
    }
    if not holdings:
        return holdings, _NO_RISK
    return holdings, var_and_correlation(holdings=holdings)
