"""Restore the newest backup into a throwaway database, verify it, drop it (spec 8.3)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.core.cli import cli_actor, exclusive
from apps.ops.exceptions import OpsError
from apps.ops.services.restore import backup_restore_test


class Command(BaseCommand):
    help = (
        "Restore the newest backup (or BACKUP) into a new temporary database, compare the key "
        "tables' row counts and content checksums with its manifest, load its Redis RDB into a "
        "throwaway redis-server, drop the database, and record the result (MaintenanceRun "
        "restore_test). Exit 1 when the backup does not verify."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup", nargs="?", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        steps = tqdm(total=3, desc="restore test", unit="step", disable=options["verbosity"] < 1)

        def progress(what: str) -> None:
            steps.set_postfix_str(what)
            steps.update(1)

        try:
            with exclusive("restore_test"):
                run = backup_restore_test(
                    actor=cli_actor(), backup=options["backup"], progress=progress
                )
        except OpsError as exc:
            raise CommandError(f"restore test FAILED: {exc.message}") from exc
        finally:
            steps.close()
        d = run.detail
        self.stdout.write(
            f"restore test ok: {d['backup']} restored in {d.get('restore_seconds')} s, "
            f"rows {d.get('tables')}, redis: {d.get('redis')}"
        )
