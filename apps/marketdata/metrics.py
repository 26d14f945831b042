"""Prometheus: feed freshness and rejected bars, read from the database at scrape time.

Reading FeedStatus on scrape makes the value right whichever process updated it
(the engine, ``manage.py import_bars``), at the cost of one small query per scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

REJECTED_BY_REASON = "marketdata_bars_rejected"  # exposed as marketdata_bars_rejected_total


class FeedFreshnessCollector(Collector):
    def describe(self) -> Iterator[Metric]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        yield GaugeMetricFamily("data_feed_last_update", "", labels=["feed"])
        yield GaugeMetricFamily("data_feed_bars_rejected", "", labels=["feed"])
        yield CounterMetricFamily(REJECTED_BY_REASON, "", labels=["feed", "reason"])

    def collect(self) -> Iterator[Metric]:
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
        by_reason = CounterMetricFamily(
            REJECTED_BY_REASON,
            "Bad market-data bars rejected, by feed and reason "
            "(apps.marketdata.domain.validation.REASONS)",
            labels=["feed", "reason"],
        )
        try:
            for status in FeedStatus.objects.only(
                "feed", "last_update", "bars_rejected", "rejections"
            ):
                if status.last_update is not None:
                    last_update.add_metric([status.feed], status.last_update.timestamp())
                rejected.add_metric([status.feed], status.bars_rejected)
                counts = status.rejections if isinstance(status.rejections, dict) else {}
                for reason, count in sorted(counts.items()):
                    by_reason.add_metric([status.feed, str(reason)], count)
        except DatabaseError:
            logger.warning("data_feed_last_update: database unavailable during scrape")
        yield last_update
        yield rejected
        yield by_reason
