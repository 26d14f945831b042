"""Restore a backup: its PostgreSQL dump, and on request its Redis snapshot (trading stopped)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.core.cli import cli_actor, exclusive
from apps.ops.exceptions import OpsError
from apps.ops.services.redis_restore import redis_restore, redis_restore_check
from apps.ops.services.restore import backup_restore, backup_restore_check


class Command(BaseCommand):
    help = (
        "Restore BACKUP (a folder in BACKUP_DIR, its path, or its manifest.json) into the "
        "configured database with pg_restore --clean --if-exists, in one transaction. With "
        "--redis, also replace the Redis server's content (every database) with the backup's "
        "RDB snapshot (loaded into a throwaway redis-server and copied key by key with their "
        "TTLs: Redis keeps running); --redis-only restores Redis alone. Refuses unless the "
        "mode is PAUSE or KILL; checks every file's size and sha256 first; asks for "
        "confirmation (--yes for scripts). The system is left paused afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--redis", action="store_true", help="restore the Redis snapshot as well")
        what.add_argument(
            "--redis-only", action="store_true", help="restore the Redis snapshot only"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = cli_actor()
        do_pg = not options["redis_only"]
        do_redis = options["redis"] or options["redis_only"]
        try:
            b = backup_restore_check(backup=options["backup"])
            if do_redis:
                redis_restore_check(backup=options["backup"])
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        plan = []
        if do_pg:
            rows = ", ".join(f"{k} {v['rows']}" for k, v in b.manifest["tables"].items())
            plan.append(
                f"this REPLACES the database {b.manifest['database']['name']!r} content ({rows})"
            )
        if do_redis:
            plan.append(
                "this REPLACES every Redis database's content (queues, cache, channel layer) "
                "with the snapshot; the queued tasks in it will run again"
            )
        self.stdout.write(
            f"backup {b.name} ({b.manifest['created_at']}) verified\n" + "\n".join(plan)
        )
        if not options["yes"]:
            try:
                answer = input("type 'restore' to go on: ")
            except EOFError:
                raise CommandError(
                    "no confirmation: stdin is empty or closed (a script, no terminal); "
                    "pass --yes to restore without asking. Nothing changed"
                ) from None
            if answer.strip() != "restore":
                raise CommandError("not confirmed: nothing changed")
        try:
            with exclusive("restore"):
                if do_pg:
                    result = backup_restore(backup=options["backup"], actor=actor)
                    self.stdout.write(
                        f"restored {result['backup']} in {result['seconds']} s; the mode in "
                        f"the backup was {result['restored_mode'].upper()}, the system is left "
                        "paused (review, then resume)"
                    )
                if do_redis:
                    bar = tqdm(desc="redis restore", unit="step", disable=options["verbosity"] < 1)

                    def progress(what: str) -> None:
                        bar.set_postfix_str(what[:40])
                        bar.update(1)

                    try:
                        detail = redis_restore(
                            backup=options["backup"], actor=actor, progress=progress
                        )
                    finally:
                        bar.close()
                    keys = ", ".join(f"db{db} {n}" for db, n in detail["keys"].items()) or "none"
                    self.stdout.write(
                        f"restored Redis {detail['redis']} from {detail['backup']} in "
                        f"{detail['seconds']} s: keys {keys}"
                    )
        except OpsError as exc:
            raise CommandError(exc.message) from exc
