"""Cross-process metric aggregates in Redis: what Celery workers, the engine and the InfluxDB
writer record, and what the web process's /metrics reads back at scrape time.

Why Redis and not prometheus_client's multiprocess mode: the processes run in separate
containers (trading-core, execution, worker, engine; docker-compose.prod.yml), so a shared
mmap directory would need a volume mounted into all of them and pids that never collide
across containers (each container numbers its own from 1), and its files outlive restarts
until someone cleans them. Redis is already shared by every process (broker, cache, channel
layer); one observation is one pipelined round trip of HINCRBY/HINCRBYFLOAT (atomic, so
concurrent writers never lose an increment), the aggregates survive process restarts (the
counters stay monotonic for ``rate()``), and a scrape reads each family with one HGETALL.

Layout (all small hashes, fields are the label values):

- ``tb:metrics:h:<name>``: histograms, fields ``<labels>|<bucket index>``, ``<labels>|sum``,
  ``<labels>|count``. Buckets are stored non-cumulative (one HINCRBY per observation) and
  made cumulative when read.
- ``tb:metrics:c:<name>``: counters, field ``<labels>``.
- ``tb:metrics:proc``: one field per live process (``<process>|<pid>``), a JSON snapshot of
  its CPU seconds and RSS with the time it was taken (apps.core.process_metrics).

A dead or slow Redis never raises out of here: writers log and drop, readers return nothing.
Every call has a short socket timeout.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import redis

logger = logging.getLogger(__name__)

PREFIX = "tb:metrics"
PROCESS_KEY = f"{PREFIX}:proc"
# Queue wait and run time of tasks: 1 ms (an order send) to 5 minutes (the task time limit).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
SOCKET_TIMEOUT = 0.25

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def client(url: str | None = None) -> redis.Redis:
    """A Redis client for metrics (REDIS_URL unless given), one per process and URL.

    Short timeouts: a scrape or a task must not wait on a dead Redis.
    """
    if url is None:
        from django.conf import settings

        url = settings.REDIS_URL
    key = (os.getpid(), url)
    with _lock:
        conn = _clients.get(key)
        if conn is None:
            conn = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                health_check_interval=30,
            )
            _clients[key] = conn
    return conn


def labels_key(values: Sequence[str]) -> str:
    """Label values as one hash field (JSON keeps any character in a value safe)."""
    return json.dumps(list(values), separators=(",", ":"))


@functools.lru_cache(maxsize=8192)
def labels_from_key(key: str) -> tuple[str, ...]:
    """The inverse of ``labels_key`` (cached: a scrape reads the same fields every time)."""
    return tuple(json.loads(key))


def bucket_index(value: float, buckets: Sequence[float] = LATENCY_BUCKETS) -> int:
    """Index of the first bucket whose upper bound holds ``value``; len(buckets) is +Inf."""
    for i, bound in enumerate(buckets):
        if value <= bound:
            return i
    return len(buckets)


class Batch:
    """Observations collected in memory, written in one pipelined round trip by ``send``."""

    def __init__(self) -> None:
        self._ops: list[tuple[str, str, str, float]] = []

    def observe(self, name: str, labels: Sequence[str], value: float) -> None:
        if not math.isfinite(value):
            return
        value = max(value, 0.0)
        key = f"{PREFIX}:h:{name}"
        lk = labels_key(labels)
        self._ops.append(("int", key, f"{lk}|{bucket_index(value)}", 1))
        self._ops.append(("float", key, f"{lk}|sum", value))
        self._ops.append(("int", key, f"{lk}|count", 1))

    def inc(self, name: str, labels: Sequence[str] = (), amount: float = 1) -> None:
        kind = "int" if float(amount).is_integer() else "float"
        self._ops.append((kind, f"{PREFIX}:c:{name}", labels_key(labels), amount))

    def send(self, conn: redis.Redis | None = None) -> bool:
        """Write everything; False (and a log line) when Redis did not take it."""
        if not self._ops:
            return True
        try:
            pipe = (conn or client()).pipeline(transaction=False)
            for kind, key, field, amount in self._ops:
                if kind == "int":
                    pipe.hincrby(key, field, int(amount))
                else:
                    pipe.hincrbyfloat(key, field, amount)
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("metrics: %d updates not recorded in Redis: %s", len(self._ops), exc)
            return False
        finally:
            self._ops = []
        return True


def read_histograms(
    names: Iterable[str], conn: redis.Redis | None = None
) -> dict[str, dict[tuple[str, ...], dict[str, Any]]]:
    """name -> labels -> {"buckets": [(le, cumulative count), ...], "sum": float, "count": int}.

    One pipelined round trip for every name.
    """
    names = list(names)
    pipe = (conn or client()).pipeline(transaction=False)
    for name in names:
        pipe.hgetall(f"{PREFIX}:h:{name}")
    out: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
    for name, raw in zip(names, pipe.execute(), strict=True):
        per_labels: dict[tuple[str, ...], dict[str, Any]] = {}
        for field, value in raw.items():
            lk, _, part = field.decode().rpartition("|")
            labels = labels_from_key(lk)
            entry = per_labels.setdefault(
                labels, {"counts": [0] * (len(LATENCY_BUCKETS) + 1), "sum": 0.0, "count": 0}
            )
            if part == "sum":
                entry["sum"] = float(value)
            elif part == "count":
                entry["count"] = int(value)
            else:
                index = int(part)
                if 0 <= index <= len(LATENCY_BUCKETS):
                    entry["counts"][index] += int(value)
        for entry in per_labels.values():
            running, buckets = 0, []
            for bound, n in zip((*LATENCY_BUCKETS, math.inf), entry.pop("counts"), strict=True):
                running += n
                buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
            entry["buckets"] = buckets
            entry["count"] = max(entry["count"], running)
        out[name] = per_labels
    return out


def read_counters(
    names: Iterable[str], conn: redis.Redis | None = None
) -> dict[str, dict[tuple[str, ...], float]]:
    """name -> labels -> value, one pipelined round trip."""
    names = list(names)
    pipe = (conn or client()).pipeline(transaction=False)
    for name in names:
        pipe.hgetall(f"{PREFIX}:c:{name}")
    return {
        name: {labels_from_key(k.decode()): float(v) for k, v in raw.items()}
        for name, raw in zip(names, pipe.execute(), strict=True)
    }
