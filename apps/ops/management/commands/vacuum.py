"""VACUUM (ANALYZE) the database now (weekly on Sunday 02:00 UTC by beat)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.core.cli import cli_actor, exclusive
from apps.ops.services.maintenance import maintenance_run, vacuum_run


class Command(BaseCommand):
    help = "VACUUM (ANALYZE) the whole database and record the run (MaintenanceRun vacuum)."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = cli_actor()
        with exclusive("vacuum"), maintenance_run(task="vacuum", actor=actor) as run:
            run.detail = vacuum_run(actor=actor)
        self.stdout.write(f"vacuum: {run.detail}")
