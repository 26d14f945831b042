"""Prometheus: execution quality and P&L per account, read from the database at scrape time.

Orders are written by the engine and the execution worker; reading the committed rows
on scrape makes the figures right whichever process wrote them. Two indexed queries per
scrape, whatever the history: orders of the last 24 h (index on created_at) and the
latest equity snapshot per account (index on account, -ts).

- ``trading_orders_today``: orders created since 00:00 UTC (denied ones included: they
  are decisions the system took).
- ``trading_fill_rate``: of the orders of the last 24 h that reached the broker and are
  done (filled, canceled, rejected, expired), the fraction filled in full. Absent while
  there is none.
- ``trading_slippage_bps``: mean over the orders of the last 24 h with a fill of
  (avg_fill_price - decision_price) / decision_price in basis points, sign-adjusted so that
  positive is a cost (bought higher or sold lower than decided). Absent while there is none.
- ``trading_realized_pnl``, ``trading_unrealized_pnl``, ``trading_fees_paid``,
  ``trading_total_pnl`` (equity - starting cash): from the latest equity snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.accounts.models import Account

logger = logging.getLogger(__name__)

GAUGES = (
    ("trading_orders_today", "Orders created since 00:00 UTC"),
    ("trading_fill_rate", "Fraction of the last 24 h's finished broker orders filled in full"),
    (
        "trading_slippage_bps",
        "Mean slippage of the last 24 h's filled orders against the decision price, in bps "
        "(positive = cost)",
    ),
    ("trading_slippage_orders", "Orders the slippage figure is the mean of"),
    ("trading_realized_pnl", "Realized P&L at the latest equity snapshot"),
    ("trading_unrealized_pnl", "Unrealized P&L at the latest equity snapshot"),
    ("trading_fees_paid", "Fees paid at the latest equity snapshot"),
    ("trading_total_pnl", "Equity at the latest snapshot minus the starting cash"),
)

_ACCOUNT = Account._meta.db_table  # accounts owns the table: its name comes from the model

_ORDERS_SQL = f"""
SELECT a.name,
       count(o.id) FILTER (WHERE o.created_at >= %(midnight)s),
       count(o.id) FILTER (WHERE o.status = 'filled'),
       count(o.id) FILTER (WHERE o.status IN ('filled', 'canceled', 'rejected', 'expired')
                             AND o.submitted_at IS NOT NULL),
       avg(CASE WHEN o.side = 'buy' THEN o.avg_fill_price - o.decision_price
                ELSE o.decision_price - o.avg_fill_price END
           / o.decision_price * 10000)
           FILTER (WHERE o.avg_fill_price IS NOT NULL AND o.decision_price > 0),
       count(o.id) FILTER (WHERE o.avg_fill_price IS NOT NULL AND o.decision_price > 0)
FROM "{_ACCOUNT}" a
LEFT JOIN trading_order o ON o.account_id = a.id AND o.created_at >= %(since)s
GROUP BY a.name
"""  # noqa: S608 - the table name from the model, values as parameters

_PNL_SQL = f"""
SELECT a.name, s.realized_pnl, s.unrealized_pnl, s.fees, s.equity - a.starting_cash
FROM "{_ACCOUNT}" a
JOIN LATERAL (
    SELECT realized_pnl, unrealized_pnl, fees, equity FROM trading_equitysnapshot
    WHERE account_id = a.id ORDER BY ts DESC LIMIT 1
) s ON true
"""  # noqa: S608 - the table name from the model


class TradingCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        for name, _ in GAUGES:
            yield GaugeMetricFamily(name, "", labels=["account"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError, connection
        from django.utils import timezone

        families = {name: GaugeMetricFamily(name, doc, labels=["account"]) for name, doc in GAUGES}
        now = timezone.now()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    _ORDERS_SQL, {"midnight": _midnight(now), "since": now - timedelta(days=1)}
                )
                for name, today, filled, done, slippage, slipped in cursor.fetchall():
                    families["trading_orders_today"].add_metric([name], today)
                    if done:
                        families["trading_fill_rate"].add_metric([name], filled / done)
                    if slippage is not None:
                        families["trading_slippage_bps"].add_metric([name], float(slippage))
                    families["trading_slippage_orders"].add_metric([name], slipped)
                cursor.execute(_PNL_SQL)
                for name, realized, unrealized, fees, total in cursor.fetchall():
                    families["trading_realized_pnl"].add_metric([name], float(realized))
                    families["trading_unrealized_pnl"].add_metric([name], float(unrealized))
                    families["trading_fees_paid"].add_metric([name], float(fees))
                    families["trading_total_pnl"].add_metric([name], float(total))
        except DatabaseError:
            logger.warning("trading metrics: database unavailable during scrape")
        yield from families.values()


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
