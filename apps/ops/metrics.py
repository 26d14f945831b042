"""Prometheus: the last success of every maintenance job, read from the database at scrape.

``maintenance_last_success_timestamp{task=...}`` for every task, and
``backup_last_success_timestamp`` (what config/prometheus/alerts.yml BackupMissing reads).
Reading MaintenanceRun on scrape makes the value right whichever worker ran the job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
            for row in rows:
                if row["last"] is None:
                    continue
                per_task.add_metric([row["task"]], row["last"].timestamp())
                if row["task"] == BACKUP_TASK:
                    backup.add_metric([], row["last"].timestamp())
        except DatabaseError:
            logger.warning("maintenance_last_success_timestamp: database unavailable during scrape")
        yield per_task
        yield backup
