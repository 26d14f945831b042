"""Restoring a backup's PostgreSQL dump, and the restore test into a throwaway database."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from apps.audit.services import audit_record
from apps.core.apps import grant_app_role
from apps.ops import backup as bk
from apps.ops.exceptions import BackupError, BackupInvalid, RestoreRefused
from apps.ops.models import MaintenanceRun
from apps.ops.services.common import Progress, quiet, restore_guard
from apps.ops.services.maintenance import maintenance_run
from apps.ops.services.redis_restore import redis_rdb_test
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get, system_mode_set


def backup_restore_check(*, backup: str | Path) -> bk.Backup:
    """Everything a restore checks before it touches anything: the files and the mode."""
    b = bk.backup_load(bk.backup_resolve(backup))
    bk.backup_verify(b)
    restore_guard(b)
    with bk.pg_connect() as conn:
        num, _ = bk.server_version(conn)
    dumped = int(b.manifest.get("database", {}).get("server_version_num", 0)) // 10000
    if dumped and dumped > num // 10000:
        raise RestoreRefused(
            f"the backup comes from PostgreSQL {dumped}, the server is {num // 10000}: "
            "restore into a server of the same or a newer major version"
        )
    return b


def _pg_restore(file: Path, *, dbname: str, clean: bool, extensions: dict[str, str]) -> None:
    with bk.pg_connect(dbname, autocommit=True) as conn:
        major = bk.server_version(conn)[0] // 10000
        timescale = "timescaledb" in extensions
        if timescale:  # TimescaleDB's documented restore protocol (not exercised in tests)
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
    args = [bk.pg_tool("pg_restore", major), "--no-owner", "--no-privileges", "--exit-on-error"]
    if clean:
        args += ["--clean", "--if-exists"]
    if not timescale:
        args.append("--single-transaction")  # all or nothing
    args += ["--no-password", f"--dbname={dbname}", str(file)]
    try:
        bk.run_tool(args, env=bk.pg_env(dbname), timeout=6 * 3600, what="pg_restore")
    finally:
        if timescale:
            with bk.pg_connect(dbname, autocommit=True) as conn:
                conn.execute("SELECT timescaledb_post_restore()")


def backup_restore(*, backup: str | Path, actor: str) -> dict[str, Any]:
    """Restore a backup's PostgreSQL dump into the configured database.

    Refuses unless the mode is PAUSE or KILL; verifies sizes and sha256 before anything
    is touched; pg_restore --clean --if-exists in one transaction (all or nothing).
    Afterwards the system is left paused (a restored NORMAL would start trading at
    once) and the restore is audited in the restored database.
    Redis is restored separately, on request (``redis_restore``; ``manage.py restore
    --redis``): it holds the broker's queues, the cache and the channel layer.
    """
    try:
        b = backup_restore_check(backup=backup)
    except RestoreRefused as exc:
        audit_record(
            actor=actor,
            action="backup.restore_refused",
            target=str(backup),
            data={"reason": exc.message},
        )
        raise
    dump = b.path("postgres")
    assert dump is not None  # backup_verify checked it
    connection.close()  # our own session must not hold locks on the tables being replaced
    started = time.monotonic()
    _pg_restore(
        dump,
        dbname=str(bk.db_settings()["NAME"]),
        clean=True,
        extensions=b.manifest.get("database", {}).get("extensions", {}),
    )
    seconds = round(time.monotonic() - started, 3)
    if settings.DATABASE_AS_OWNER:
        # restored --no-privileges as the owner: the application role's grants again
        # (manage.py runs restore as DATABASE_OWNER_URL, docs/security.md)
        grant_app_role()

    restored_mode = system_mode_get()
    if restored_mode not in (SystemMode.PAUSE, SystemMode.KILL):
        system_mode_set(
            mode=SystemMode.PAUSE,
            actor=actor,
            source="cli",
            reason=f"restored from backup {b.name}; review before resuming",
        )
    audit_record(
        actor=actor,
        action="backup.restore",
        target=b.name,
        data={"seconds": seconds, "restored_mode": restored_mode.value},
    )
    _backup_success_record(b, actor=actor)
    return {"backup": b.name, "seconds": seconds, "restored_mode": restored_mode.value}


def _backup_success_record(b: bk.Backup, *, actor: str) -> None:
    """The restored database forgets the backup it came from.

    The dump is taken before its backup run is recorded as successful, so the restored
    MaintenanceRun table ends with the run before it (or none): the last-backup metric
    would jump back a day or to 0 and BackupMissing fire until the next backup. The backup
    just verified and restored is a successful backup: record it at its own time.
    """
    from datetime import datetime

    from django.db.models import Q

    from apps.ops.models import RunOutcome

    created = datetime.fromisoformat(b.manifest["created_at"])
    newer = MaintenanceRun.objects.filter(
        Q(finished_at__gte=created), task="backup", outcome=RunOutcome.OK
    )
    if not newer.exists():
        MaintenanceRun.objects.create(
            task="backup",  # what manage.py backup and ops.backup record
            started_at=created,
            finished_at=created,
            outcome=RunOutcome.OK,
            actor=actor,
            detail={"backup": b.name, "recorded_by": "restore (the restored data predates it)"},
        )


def backup_restore_test(
    *, actor: str, backup: str | Path | None = None, progress: Progress = quiet
) -> MaintenanceRun:
    """Restore a backup (default: the newest) into a throwaway database and verify it.

    Checks the files' sha256, restores into a new temporary database, compares every
    key table's row count and content checksum with the manifest, loads the Redis RDB
    into a throwaway redis-server when one is installed (else checks its header), and
    drops the database. The result is a MaintenanceRun (task "restore_test"); a failed
    check raises BackupInvalid after recording it.
    """
    with maintenance_run(task="restore_test", actor=actor) as run:
        if backup is None:
            backups = bk.backup_list()
            if not backups:
                raise BackupInvalid(f"no backup to test in {settings.BACKUP_DIR}")
            b = backups[0]
        else:
            b = bk.backup_load(bk.backup_resolve(backup))
        run.detail = {"backup": b.name}
        progress(f"verifying {b.name}")
        run.detail["files_verified"] = bk.backup_verify(b)
        dump = b.path("postgres")
        assert dump is not None
        tmpdb = f"{str(bk.db_settings()['NAME'])[:30]}_restoretest_{secrets.token_hex(4)}"
        started = time.monotonic()
        with bk.pg_connect(autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{tmpdb}" TEMPLATE template0')
        try:
            progress(f"pg_restore into {tmpdb}")
            try:
                _pg_restore(
                    dump,
                    dbname=tmpdb,
                    clean=False,
                    extensions=b.manifest.get("database", {}).get("extensions", {}),
                )
            except BackupError as exc:
                raise BackupInvalid(
                    f"the dump of {b.name} does not restore: {exc.message}"
                ) from exc
            run.detail["restore_seconds"] = round(time.monotonic() - started, 3)
            progress("comparing row counts and checksums")
            with bk.pg_connect(tmpdb) as conn:
                tables = {k: v["table"] for k, v in b.manifest["tables"].items()}
                got = bk.table_stats(conn, tables)
            diffs = [
                f"{k}: rows {want['rows']} -> {got[k]['rows']}"
                + ("" if want["md5"] == got[k]["md5"] else ", content differs")
                for k, want in b.manifest["tables"].items()
                if (want["rows"], want["md5"]) != (got[k]["rows"], got[k]["md5"])
            ]
            run.detail["tables"] = {k: v["rows"] for k, v in got.items()}
            if diffs:
                raise BackupInvalid(f"{b.name} restored different data: {'; '.join(diffs)}")
        finally:
            with bk.pg_connect(autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{tmpdb}" WITH (FORCE)')
        run.detail["redis"] = redis_rdb_test(b)
        audit_record(actor=actor, action="backup.restore_test", target=b.name, data=run.detail)
    return run
