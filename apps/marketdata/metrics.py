"""Prometheus: feed freshness read from the database at scrape time.

Reading FeedStatus on scrape makes the value right whichever process updated it
(the engine), at the cost of one small query per scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class FeedFreshnessCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        yield GaugeMetricFamily("data_feed_last_update", "", labels=["feed"])
        yield GaugeMetricFamily("data_feed_bars_rejected", "", labels=["feed"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError

        from apps.marketdata.models import FeedStatus

        last_update = GaugeMetricFamily(
            "data_feed_last_update",
            "Unix time of the last good bar from each feed",
            labels=["feed"],
        )
        rejected = GaugeMetricFamily(
            "data_feed_bars_rejected", "Bad market-data rows rejected by each feed", labels=["feed"]
        )
        try:
            for status in FeedStatus.objects.only("feed", "last_update", "bars_rejected"):
                if status.last_update is not None:
                    last_update.add_metric([status.feed], status.last_update.timestamp())
                rejected.add_metric([status.feed], status.bars_rejected)
        except DatabaseError:
            logger.warning("data_feed_last_update: database unavailable during scrape")
        yield last_update
        yield rejected
