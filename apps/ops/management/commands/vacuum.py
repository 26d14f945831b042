"""VACUUM (ANALYZE) the database now (weekly on Sunday 02:00 UTC by beat)."""

from __future__ import annotations

from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError

from apps.core.cli import cli_actor, exclusive
from apps.ops.services.maintenance import maintenance_run, vacuum_run


class Command(BaseCommand):
    help = "VACUUM (ANALYZE) the whole database and record the run (MaintenanceRun vacuum)."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = cli_actor()
        try:
            with exclusive("vacuum"), maintenance_run(task="vacuum", actor=actor) as run:
                run.detail = vacuum_run(actor=actor)
        except psycopg.Error as exc:
            raise CommandError(
                f"vacuum failed (recorded as failed): {' '.join(str(exc).split())} Check that "
                "PostgreSQL is up and DATABASE_URL reaches it, then run vacuum again"
            ) from exc
        self.stdout.write(f"vacuum: {run.detail}")
