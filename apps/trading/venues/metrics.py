"""Prometheus counters the broker adapters share (one series per broker label).

Counters live in the process that talks to the broker (the execution worker); each
adapter increments its own label, e.g. ``broker_malformed_messages_total{broker="kraken"}``.
"""

from __future__ import annotations

from prometheus_client import Counter

BROKER_MALFORMED_MESSAGES = Counter(
    "broker_malformed_messages",
    "Broker responses that could not be understood (bad JSON, missing or invalid fields)",
    ["broker"],
)
