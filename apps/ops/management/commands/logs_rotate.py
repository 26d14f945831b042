"""Rotate stale log files and delete those older than LOG_RETENTION_DAYS (daily 00:30 UTC)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.core.cli import cli_actor
from apps.ops.services.maintenance import logs_rotate, maintenance_run


class Command(BaseCommand):
    help = "Rotate log files not written since before midnight UTC; delete rotated files older than 90 days."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = cli_actor()
        with maintenance_run(task="logs_rotate", actor=actor) as run:
            run.detail = logs_rotate(actor=actor)
        self.stdout.write(f"logs: {run.detail}")
