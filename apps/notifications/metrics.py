"""Prometheus: when Alertmanager's Watchdog last reached the app, read from the database.

``alertmanager_watchdog_last_seen_timestamp`` (Unix time; 0 until the first one);
its age is ``time() - alertmanager_watchdog_last_seen_timestamp``. Reading the row at
scrape time makes it right whichever web process received the webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

NAME = "alertmanager_watchdog_last_seen_timestamp"


class WatchdogCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        yield GaugeMetricFamily(NAME, "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError

        from apps.notifications.models import WatchdogHeartbeat

        gauge = GaugeMetricFamily(
            NAME, "Unix time of the last Watchdog alert Alertmanager delivered to the app"
        )
        try:
            seen = WatchdogHeartbeat.objects.filter(pk=1).values_list("last_seen_at", flat=True)
            last = seen.first()
            # 0 until the first heartbeat: "never seen" reads as the oldest possible age.
            gauge.add_metric([], last.timestamp() if last is not None else 0.0)
        except DatabaseError:
            logger.warning("%s: database unavailable during scrape", NAME)
        yield gauge
