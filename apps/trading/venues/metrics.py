"""Prometheus counters shared by the broker adapters (one definition per process).

Defined once here, labelled by broker, so that two adapters imported into the same
process do not register the same metric name twice (prometheus_client refuses that).
The counters live in the process that talks to the broker (the execution worker).
"""

from __future__ import annotations

from prometheus_client import Counter

BROKER_MALFORMED_MESSAGES = Counter(
    "broker_malformed_messages",
    "Messages from a broker connection that could not be decoded (logged and skipped)",
    ["broker"],
)
