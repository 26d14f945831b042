"""Prometheus: the risk gauges, read from the database at scrape time (here in trading
because they read the books: positions and equity monitors).

Whichever process marked the equity (the engine) or changed the mode (web, a
worker, the CLI), the scrape reads the committed rows: EquityMonitor per account
(equity, drawdown, daily P&L, open positions), SystemState (one gauge per mode,
1 for the one in force) and the historical VaR of current holdings (RiskCache: recomputed
off the scrape path), with the
exposures (gross, net, per instrument: market value at the last mark, signed) and the
correlations of the held instruments' daily returns that the same holdings give.
Fractions stay fractions: trading_drawdown_pct 0.15 means 15 %.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.risk.domain.modes import SystemMode
from apps.risk.models import EquityMonitor, SystemState
from apps.risk.selectors import var_and_correlation
from apps.trading.models import Position

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
    holdings = {
        p.instrument.symbol: (p.instrument_id, (p.last_price or p.avg_price) * p.quantity)
        for p in Position.objects.filter(account_id=account_id)
        .exclude(quantity=0)
        .select_related("instrument")
    }
    if not holdings:
        return holdings, _NO_RISK
    return holdings, _risk_cache.get(account_id, holdings)


class RiskCache:
    """VaR and correlations per account for the scrape, recomputed off the scrape path.

    ``var_and_correlation`` reads the daily closes of the VaR window from the bars (seconds
    on a year of one-minute bars: bench/metrics_scrape.py) and its own cache is keyed by
    the holdings' values, which change at every mark. A scrape therefore answers with the
    last result computed for the account and, when the holdings changed (instruments at
    once, values after ``max_age`` seconds), starts one background recompute; only the
    account's very first scrape in a process computes inline. The figures lag the marks
    by at most ``max_age`` seconds plus one computation: fine for a 1-day VaR.
    """

    def __init__(self, max_age: float = 60.0) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, tuple[Any, ...], dict[str, Any]]] = {}
        self._running: set[int] = set()

    @staticmethod
    def _key(holdings: dict[str, tuple[int, Decimal]]) -> tuple[Any, ...]:
        return tuple(sorted((s, str(v)) for s, (_, v) in holdings.items()))

    def get(self, account_id: int, holdings: dict[str, tuple[int, Decimal]]) -> dict[str, Any]:
        key = self._key(holdings)
        with self._lock:
            entry = self._entries.get(account_id)
        if entry is None:
            result = var_and_correlation(holdings=holdings)
            with self._lock:
                self._entries[account_id] = (time.monotonic(), key, result)
            return result
        computed_at, old_key, result = entry
        moved = {s for s, _ in old_key} != set(holdings)
        stale = old_key != key and time.monotonic() - computed_at > self.max_age
        if moved or stale:
            self._refresh(account_id, holdings, key)
        return result

    def _refresh(self, account_id: int, holdings: dict[str, Any], key: tuple[Any, ...]) -> None:
        with self._lock:
            if account_id in self._running:
                return
            self._running.add(account_id)
        threading.Thread(
            target=self._compute,
            args=(account_id, holdings, key),
            daemon=True,
            name=f"risk-metrics-{account_id}",
        ).start()

    def _compute(self, account_id: int, holdings: dict[str, Any], key: tuple[Any, ...]) -> None:
        from django.db import connection

        try:
            result = var_and_correlation(holdings=holdings)
            with self._lock:
                self._entries[account_id] = (time.monotonic(), key, result)
        except Exception:  # a failed refresh keeps the last figures; the next scrape retries
            logger.exception("risk metrics: VaR refresh failed for account %s", account_id)
        finally:
            connection.close()  # this thread's own connection
            with self._lock:
                self._running.discard(account_id)

    def wait(self, timeout: float = 30.0) -> bool:
        """Until no refresh runs (tests, the bench)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return True
            time.sleep(0.01)
        return False


_risk_cache = RiskCache()
