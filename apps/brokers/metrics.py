"""Prometheus: broker connectivity and reconciliation, read from the database at scrape.

``broker_connected{broker,account}`` is 1 while the account's session is connected AND
its last heartbeat is recent (a dead execution worker stops heartbeating, so its
broker reads 0 even though nobody wrote "disconnected"); the paper broker is always
connected. ``reconciliation_discrepancies_open`` feeds the ReconciliationDiscrepancy
alert; ``reconciliation_last_run_timestamp{outcome}`` shows that reconciliation runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class BrokerCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("broker_connected", "", labels=["broker", "account"])
        yield GaugeMetricFamily("reconciliation_discrepancies_open", "")
        yield GaugeMetricFamily("reconciliation_last_run_timestamp", "", labels=["outcome"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError
        from django.db.models import Max

        from apps.brokers.models import Discrepancy, DiscrepancyStatus, ReconciliationRun
        from apps.brokers.selectors import broker_sessions

        connected = GaugeMetricFamily(
            "broker_connected",
            "1 when the account's broker session is connected and heartbeating, else 0",
            labels=["broker", "account"],
        )
        open_count = GaugeMetricFamily(
            "reconciliation_discrepancies_open", "Open reconciliation discrepancies"
        )
        last_run = GaugeMetricFamily(
            "reconciliation_last_run_timestamp",
            "Unix time of the last finished reconciliation run, by outcome",
            labels=["outcome"],
        )
        try:
            for row in broker_sessions():
                connected.add_metric([row["broker"], row["account"]], int(row["up"]))
            open_count.add_metric(
                [], Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN).count()
            )
            for row in (
                ReconciliationRun.objects.exclude(finished_at__isnull=True)
                .values("outcome")
                .annotate(last=Max("finished_at"))
            ):
                last_run.add_metric([row["outcome"]], row["last"].timestamp())
        except DatabaseError:
            logger.warning("broker metrics: database unavailable during scrape")
        yield connected
        yield open_count
        yield last_run


def register() -> None:
    from prometheus_client import REGISTRY

    # The adapters' shared counter (registered on import), in every process that scrapes.
    import apps.trading.venues.metrics  # noqa: F401

    if not getattr(REGISTRY, "_tradebot_broker_collector", False):
        REGISTRY.register(BrokerCollector())
        REGISTRY._tradebot_broker_collector = True  # type: ignore[attr-defined]
