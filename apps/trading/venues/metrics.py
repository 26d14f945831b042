"""Counters the broker adapters share, right across processes.

``broker_malformed_messages_total{broker=...}``: broker messages that could not be
understood (bad JSON, missing or invalid fields), logged and skipped. The adapters run
in the execution worker, but /metrics is scraped from web: so the count lives in Redis
(``apps.core.metrics_store``, one HINCRBY per message) and this collector reads it at
scrape time. A dead Redis loses the count (logged), never the message handling.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from apps.core import metrics_store

logger = logging.getLogger(__name__)

NAME = "broker_malformed_messages"


class _Child:
    def __init__(self, broker: str) -> None:
        self.broker = broker

    def inc(self, amount: float = 1) -> None:
        batch = metrics_store.Batch()
        batch.inc(NAME, [self.broker], amount)
        batch.send()


class BrokerMessageCounter(Collector):
    """The subset of prometheus_client's Counter the adapters use: ``labels(broker=).inc()``."""

    def labels(self, *, broker: str) -> _Child:
        return _Child(broker)

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(NAME, "", labels=["broker"])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            NAME,
            "Broker messages that could not be understood (logged and skipped), all processes",
            labels=["broker"],
        )
        try:
            counts = {("kraken",): 0.0, ("ibkr",): 0.0}  # every live adapter, from zero
            counts.update(metrics_store.read_counters([NAME])[NAME])
            for labels, value in sorted(counts.items()):
                family.add_metric(list(labels), value)
        except redis.RedisError as exc:
            logger.warning("broker_malformed_messages: Redis unavailable during scrape: %s", exc)
        yield family


BROKER_MALFORMED_MESSAGES = BrokerMessageCounter()
if not getattr(REGISTRY, "_tradebot_broker_messages", False):
    REGISTRY.register(BROKER_MALFORMED_MESSAGES)
    REGISTRY._tradebot_broker_messages = True  # type: ignore[attr-defined]
