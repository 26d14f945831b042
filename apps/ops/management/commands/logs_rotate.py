"""Rotate stale log files and delete those older than LOG_RETENTION_DAYS (daily 00:30 UTC)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.cli import cli_actor
from apps.ops.exceptions import OpsError
from apps.ops.services.maintenance import logs_rotate, maintenance_run


class Command(BaseCommand):
    help = (
        "Rotate log files not written since before midnight UTC; delete rotated files older "
        "than 90 days. Exit 1 (recorded as failed) when LOG_DIR is set but not a directory."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = cli_actor()
        try:
            with maintenance_run(task="logs_rotate", actor=actor) as run:
                run.detail = logs_rotate(actor=actor)
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        except OSError as exc:
            raise CommandError(f"log rotation failed: {exc}") from exc
        self.stdout.write(f"logs: {run.detail}")
