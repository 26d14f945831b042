"""Prometheus counters shared by the broker adapters (one definition per process).

Defined once here, labelled by broker (``broker_malformed_messages_total{broker="kraken"}``),
so that two adapters imported into the same process do not register the same metric name
twice (prometheus_client refuses that). The counters live in the process that talks to
the broker (the execution worker).
"""

from __future__ import annotations

from prometheus_client import Counter

BROKER_MALFORMED_MESSAGES = Counter(
    "broker_malformed_messages",
    "Broker messages that could not be understood (bad JSON, missing or invalid fields); "
    "logged and skipped",
    ["broker"],
)
