"""Backups: PostgreSQL dump, Redis RDB and manifest written atomically, and their retention."""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.utils import timezone

from apps.audit.services import audit_record
from apps.ops import backup as bk
from apps.ops.exceptions import BackupError
from apps.ops.services.common import Progress, quiet


@dataclass
class BackupResult:
    folder: Path
    manifest: dict[str, Any]
    pruned: list[str] = field(default_factory=list)


def _writable_dir(base: Path) -> None:
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"cannot create the backup directory {base}: {exc.strerror} "
            "(set BACKUP_DIR to a writable directory)"
        ) from None
    if not os.access(base, os.W_OK | os.X_OK):
        raise BackupError(
            f"the backup directory {base} is not writable by this user "
            "(fix its permissions or set BACKUP_DIR)"
        )


def backup_create(
    *,
    actor: str,
    backup_dir: Path | None = None,
    skip_redis: bool = False,
    now: datetime | None = None,
    progress: Progress = quiet,
) -> BackupResult:
    """pg_dump (custom, compressed) + Redis RDB + manifest.json, written atomically.

    Everything is written to a hidden ``.partial-*`` folder renamed into place at the
    end; on any failure (tool error, full or unwritable disk) that folder is removed,
    so the backup directory holds only complete backups and the previous ones are kept.
    Afterwards old backups are pruned (BACKUP_RETENTION_PG_DAYS / _REDIS_DAYS).
    """
    now = now or timezone.now()
    base = Path(backup_dir or settings.BACKUP_DIR)
    name = f"{bk.NAME_PREFIX}{now:%Y%m%dT%H%M%SZ}"
    final = base / name
    _writable_dir(base)
    if final.exists():
        raise BackupError(f"{final} already exists: one backup per second at most")
    partial = base / f"{bk.PARTIAL_PREFIX}{name}-{os.getpid()}"
    try:
        partial.mkdir()
        manifest = _backup_write(
            partial, name=name, now=now, skip_redis=skip_redis, progress=progress
        )
        os.rename(partial, final)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError):
            hint = " (disk full)" if exc.errno == errno.ENOSPC else ""
            raise BackupError(
                f"backup failed writing to {base}: {exc.strerror or exc}{hint}; "
                "nothing was kept from this attempt, the previous backups are untouched"
            ) from exc
        raise
    audit_record(
        actor=actor,
        action="backup.create",
        target=name,
        data={k: manifest[k] for k in ("files", "tables")},
    )
    pruned = backup_prune(actor=actor, backup_dir=base, now=now, keep=name)
    return BackupResult(folder=final, manifest=manifest, pruned=pruned)


def _backup_write(
    folder: Path, *, name: str, now: datetime, skip_redis: bool, progress: Progress
) -> dict[str, Any]:
    db = bk.db_settings()
    tables = bk.key_tables()
    with bk.pg_connect() as conn:
        num, version = bk.server_version(conn)
        major = num // 10000
        pg_dump = bk.pg_tool("pg_dump", major)
        conn.rollback()  # the version queries opened a transaction: start the snapshot afresh
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        # One snapshot for the counts and the dump: the transaction stays open until
        # pg_dump has finished (pg_dump --snapshot attaches to it).
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        progress("counting and checksumming the key tables")
        stats = bk.table_stats(conn, tables)
        extensions = dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())
        progress("pg_dump")
        dump = folder / bk.PG_FILE
        tool_version = bk.run_tool(
            [pg_dump, "--version"], env=bk.pg_env(), timeout=30, what="pg_dump --version"
        ).strip()
        bk.run_tool(
            [
                pg_dump,
                "--format=custom",
                "--compress=6",
                f"--snapshot={snapshot}",
                "--no-password",
                f"--file={dump}",
                str(db["NAME"]),
            ],
            env=bk.pg_env(),
            timeout=6 * 3600,
            what="pg_dump",
        )
        conn.rollback()
    files = {"postgres": bk.file_entry(dump)}
    redis_info: dict[str, Any] = {"skipped": True}
    if not skip_redis:
        progress("redis-cli --rdb")
        cli = bk.redis_cli()
        rdb = folder / bk.REDIS_FILE
        args, env = bk.redis_cli_args(settings.REDIS_URL)
        bk.run_tool([cli, *args, "--rdb", str(rdb)], env=env, timeout=3600, what="redis-cli --rdb")
        if not rdb.is_file() or not bk.rdb_header_ok(rdb):
            raise BackupError(f"redis-cli wrote no valid RDB file to {rdb}")
        files["redis"] = bk.file_entry(rdb)
        redis_info = {"url": bk.mask_url(settings.REDIS_URL), "cli": cli}
    manifest = {
        "format": 1,
        "name": name,
        "created_at": now.isoformat(),
        "environment": settings.ENVIRONMENT.value,
        "database": {
            "name": db["NAME"],
            "server_version": version,
            "server_version_num": num,
            "pg_dump": tool_version,
            "extensions": extensions,
            "snapshot": snapshot,
        },
        "redis": redis_info,
        "tables": stats,
        "files": files,
    }
    (folder / bk.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def backup_prune(
    *, actor: str, backup_dir: Path | None = None, now: datetime | None = None, keep: str = ""
) -> list[str]:
    """Retention: PostgreSQL dumps BACKUP_RETENTION_PG_DAYS, Redis RDBs _REDIS_DAYS.

    The newest backup and ``keep`` are never removed; leftovers of crashed runs
    (``.partial-*`` older than a day) are removed.
    """
    now = now or timezone.now()
    base = Path(backup_dir or settings.BACKUP_DIR)
    removed: list[str] = []
    backups = bk.backup_list(base)
    newest = backups[0].name if backups else ""
    for b in backups:
        if b.name in (newest, keep):
            continue
        try:
            created = datetime.fromisoformat(b.manifest["created_at"])
        except (KeyError, ValueError):
            continue
        age = now - created
        if age > timedelta(days=settings.BACKUP_RETENTION_PG_DAYS):
            shutil.rmtree(b.folder, ignore_errors=True)
            removed.append(b.name)
            continue
        redis = b.manifest["files"].get("redis")
        if (
            redis
            and not redis.get("pruned_at")
            and age > timedelta(days=settings.BACKUP_RETENTION_REDIS_DAYS)
        ):
            (b.folder / redis["path"]).unlink(missing_ok=True)
            redis["pruned_at"] = now.isoformat()
            (b.folder / bk.MANIFEST).write_text(json.dumps(b.manifest, indent=2, sort_keys=True))
            removed.append(f"{b.name}/{redis['path']}")
    for leftover in base.glob(f"{bk.PARTIAL_PREFIX}*"):
        if now.timestamp() - leftover.stat().st_mtime > 86400:
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover.name)
    if removed:
        audit_record(actor=actor, action="backup.prune", data={"removed": removed})
    return removed
