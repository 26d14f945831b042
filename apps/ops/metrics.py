"""Prometheus: what the web process's /metrics reads at scrape time for the other processes.

- ``maintenance_last_success_timestamp{task=...}`` for every task, and
  ``backup_last_success_timestamp`` (what config/prometheus/alerts.yml BackupMissing reads),
  from MaintenanceRun: right whichever worker ran the job.
- ``celery_queue_length{queue=...}``: LLEN of each queue's list(s) on the Redis broker.
- Celery task wait/run time histograms and outcomes, InfluxDB writer counters, and the CPU
  and RSS of every app process: aggregates the workers, the engine and the writer keep in
  Redis (apps.core.metrics_store says why Redis and not multiprocess files).

Every collector answers ``describe`` without I/O (registration stays out of the database
and Redis) and logs instead of failing when its store is down: a scrape always answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from apps.core import metrics_store, process_metrics
from apps.core.influx import COUNTERS

logger = logging.getLogger(__name__)

BACKUP_TASK = "backup"


class MaintenanceCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names; answering here keeps the database out of app start-up.
        yield GaugeMetricFamily("maintenance_last_success_timestamp", "", labels=["task"])
        yield GaugeMetricFamily("backup_last_success_timestamp", "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError
        from django.db.models import Max

        from apps.ops.models import MaintenanceRun, RunOutcome

        per_task = GaugeMetricFamily(
            "maintenance_last_success_timestamp",
            "Unix time of the last successful run of each maintenance task",
            labels=["task"],
        )
        backup = GaugeMetricFamily(
            "backup_last_success_timestamp", "Unix time of the last successful backup"
        )
        try:
            rows = (
                MaintenanceRun.objects.filter(outcome=RunOutcome.OK)
                .values("task")
                .annotate(last=Max("finished_at"))
            )
            last_backup = 0.0  # never: BackupMissing fires (no successful backup at all)
            for row in rows:
                if row["last"] is None:
                    continue
                per_task.add_metric([row["task"]], row["last"].timestamp())
                if row["task"] == BACKUP_TASK:
                    last_backup = row["last"].timestamp()
            backup.add_metric([], last_backup)
        except DatabaseError:
            logger.warning("maintenance_last_success_timestamp: database unavailable during scrape")
        yield per_task
        yield backup


# --- Celery: queue depth on the broker, task latency and outcomes from Redis -------------

# kombu's Redis transport keeps a queue's messages with a priority in lists named
# "<queue>\x06\x16<step>" next to the plain "<queue>" list (priority 0).
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def broker_queue_keys(queue: str) -> list[str]:
    return [queue, *(f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS)]


class CeleryCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        from apps.ops.celery_metrics import OUTCOMES, RUNTIME, WAIT

        yield GaugeMetricFamily("celery_queue_length", "", labels=["queue"])
        yield HistogramMetricFamily(WAIT, "", labels=["task", "queue"])
        yield HistogramMetricFamily(RUNTIME, "", labels=["task", "queue"])
        yield CounterMetricFamily(OUTCOMES, "", labels=["task", "queue", "state"])

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        from apps.ops.celery_metrics import OUTCOMES, RUNTIME, STATES, WAIT

        length = GaugeMetricFamily(
            "celery_queue_length",
            "Messages waiting on each Celery queue (LLEN on the Redis broker)",
            labels=["queue"],
        )
        try:
            for queue, n in celery_queue_lengths().items():
                length.add_metric([queue], n)
        except redis.RedisError as exc:
            logger.warning("celery_queue_length: broker unavailable during scrape: %s", exc)
        yield length

        docs = {
            WAIT: "Time from publish (or ETA) to start in a worker, per task",
            RUNTIME: "Run time of each task in the worker",
        }
        families = {
            name: HistogramMetricFamily(name, doc, labels=["task", "queue"])
            for name, doc in docs.items()
        }
        outcomes = CounterMetricFamily(
            OUTCOMES, "Tasks finished, per outcome", labels=["task", "queue", "state"]
        )
        try:
            conn = metrics_store.client()
            histograms = metrics_store.read_histograms(families, conn=conn)
            counters = metrics_store.read_counters([OUTCOMES], conn=conn)[OUTCOMES]
        except redis.RedisError as exc:
            logger.warning("celery task metrics: Redis unavailable during scrape: %s", exc)
        else:
            for name, per_labels in histograms.items():
                for labels, h in sorted(per_labels.items()):
                    families[name].add_metric(list(labels), h["buckets"], h["sum"])
            # Every outcome of every task seen, zeros included: a failure rate is 0, not absent.
            seen = {labels[:2] for labels in counters} | set(histograms[RUNTIME])
            for task_queue in sorted(seen):
                for state in STATES:
                    outcomes.add_metric(
                        [*task_queue, state], counters.get((*task_queue, state), 0.0)
                    )
        yield from families.values()
        yield outcomes


def celery_queue_lengths() -> dict[str, int]:
    """queue -> messages waiting, from the Redis broker in one pipelined round trip.

    Nothing when the broker is not Redis (LLEN is O(1) there).
    """
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return {}
    queues = [q.name for q in settings.CELERY_TASK_QUEUES]
    pipe = metrics_store.client(url).pipeline(transaction=False)
    for queue in queues:
        for key in broker_queue_keys(queue):
            pipe.llen(key)
    counts = pipe.execute()
    per = len(_PRIORITY_STEPS) + 1
    return {queue: sum(counts[i * per : (i + 1) * per]) for i, queue in enumerate(queues)}


# --- CPU and RSS of every app process ------------------------------------------------------


class AppProcessCollector(Collector):
    """This (web) process measured now, the others as they last reported to Redis."""

    def __init__(self, process: str = "web") -> None:
        self.process = process

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield CounterMetricFamily("tradebot_process_cpu_seconds", "", labels=LABELS)
        yield GaugeMetricFamily("tradebot_process_resident_memory_bytes", "", labels=LABELS)
        yield GaugeMetricFamily("tradebot_process_start_time_seconds", "", labels=LABELS)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        cpu = CounterMetricFamily(
            "tradebot_process_cpu_seconds",
            "User + system CPU time of each app process (rate() = cores used)",
            labels=LABELS,
        )
        rss = GaugeMetricFamily(
            "tradebot_process_resident_memory_bytes",
            "Resident memory of each app process",
            labels=LABELS,
        )
        start = GaugeMetricFamily(
            "tradebot_process_start_time_seconds",
            "Unix start time of each app process",
            labels=LABELS,
        )
        snaps = [process_metrics.snapshot(self.process)]
        try:
            me = process_metrics.field(snaps[0])
            snaps += [s for s in process_metrics.read_all() if process_metrics.field(s) != me]
        except redis.RedisError as exc:
            logger.warning("process metrics: Redis unavailable during scrape: %s", exc)
        for snap in snaps:
            labels = [str(snap["process"]), str(snap["host"]), str(snap["pid"])]
            cpu.add_metric(labels, float(snap["cpu_seconds"]))
            rss.add_metric(labels, float(snap["rss_bytes"]))
            start.add_metric(labels, float(snap["start_time"]))
        yield cpu
        yield rss
        yield start


LABELS = ["process", "host", "pid"]


# --- the InfluxDB writer (apps.core.influx), summed over every process that writes ----------


class InfluxWriterCollector(Collector):
    def describe(self) -> Iterator[CounterMetricFamily]:
        for name, _ in COUNTERS:
            yield CounterMetricFamily(name, "")

    def collect(self) -> Iterator[CounterMetricFamily]:
        families = {name: CounterMetricFamily(name, doc) for name, doc in COUNTERS}
        try:
            values = metrics_store.read_counters(families)
        except redis.RedisError as exc:
            logger.warning("influxdb metrics: Redis unavailable during scrape: %s", exc)
            values = {}
        for name, family in families.items():
            family.add_metric([], values.get(name, {}).get((), 0.0))
        yield from families.values()
