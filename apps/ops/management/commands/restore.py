"""Restore a backup's PostgreSQL dump into the configured database (trading must be stopped)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ops.cli import cli_actor, exclusive
from apps.ops.exceptions import OpsError
from apps.ops.services import backup_restore, backup_restore_check


class Command(BaseCommand):
    help = (
        "Restore BACKUP (a folder in BACKUP_DIR, its path, or its manifest.json) into the "
        "configured database with pg_restore --clean --if-exists, in one transaction. Refuses "
        "unless the mode is PAUSE or KILL; checks every file's size and sha256 first; asks for "
        "confirmation (--yes for scripts). The system is left paused afterwards. Redis is not "
        "restored (docs/runbooks.md, 8.2)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = cli_actor()
        try:
            b = backup_restore_check(backup=options["backup"])
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        rows = ", ".join(f"{k} {v['rows']}" for k, v in b.manifest["tables"].items())
        self.stdout.write(
            f"backup {b.name} ({b.manifest['created_at']}) verified: {rows}\n"
            f"this REPLACES the database {b.manifest['database']['name']!r} content"
        )
        if not options["yes"]:
            answer = input("type 'restore' to go on: ")
            if answer.strip() != "restore":
                raise CommandError("not confirmed: nothing changed")
        try:
            with exclusive("restore"):
                result = backup_restore(backup=options["backup"], actor=actor)
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"restored {result['backup']} in {result['seconds']} s; the mode in the backup was "
            f"{result['restored_mode'].upper()}, the system is left paused (review, then resume)"
        )
