"""Back up PostgreSQL (pg_dump) and Redis (RDB) with a manifest; prune old backups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.core.cli import cli_actor, exclusive
from apps.ops.exceptions import OpsError
from apps.ops.services.backups import backup_create
from apps.ops.services.maintenance import maintenance_run


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump, custom format, compressed, one consistent snapshot "
        "with the manifest's row counts) and Redis (redis-cli --rdb) into BACKUP_DIR/<name>/ "
        "with manifest.json (sizes, sha256, key tables' rows and checksums). Old backups are "
        "pruned: PostgreSQL after BACKUP_RETENTION_PG_DAYS (30), Redis after _REDIS_DAYS (7)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dir", type=Path, default=None, help="backup directory (default BACKUP_DIR)"
        )
        parser.add_argument("--skip-redis", action="store_true", help="PostgreSQL only")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = cli_actor()
        steps = tqdm(total=4, desc="backup", unit="step", disable=options["verbosity"] < 1)

        def progress(what: str) -> None:
            steps.set_postfix_str(what)
            steps.update(1)

        try:
            with exclusive("backup"), maintenance_run(task="backup", actor=actor) as run:
                result = backup_create(
                    actor=actor,
                    backup_dir=options["dir"],
                    skip_redis=options["skip_redis"],
                    progress=progress,
                )
                run.detail = {
                    "backup": result.manifest["name"],
                    "files": result.manifest["files"],
                    "pruned": result.pruned,
                }
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        finally:
            steps.close()
        m = result.manifest
        sizes = ", ".join(f"{k} {v['bytes']:,} B" for k, v in m["files"].items())
        rows = ", ".join(f"{k} {v['rows']}" for k, v in m["tables"].items())
        self.stdout.write(f"backup {result.folder}: {sizes}; rows: {rows}")
        if result.pruned:
            self.stdout.write(f"pruned: {', '.join(result.pruned)}")
