"""Operations services: backups and restores, maintenance jobs, runbooks, checklists.

Every function is keyword-only and takes ``actor`` ("beat", "cli:<os user>",
"user:<name>"); state changes leave an audit row. Commands, tasks and views are thin
interfaces over these.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.ops import backup as bk
from apps.ops.exceptions import (
    BackupError,
    BackupInvalid,
    OpsError,
    RestoreRefused,
    ToolMissing,
)
from apps.ops.models import ChecklistRun, MaintenanceRun, RunOutcome

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
HEARTBEAT_KEY = "ops:beat:heartbeat"


def _quiet(_: str) -> None:
    return None


# --- maintenance runs --------------------------------------------------------------------


@contextlib.contextmanager
def maintenance_run(*, task: str, actor: str) -> Iterator[MaintenanceRun]:
    """Record one run of a maintenance job: started, then ok or failed with the error.

    The caller may fill ``run.detail`` while it works; it is saved at the end.
    Not to be used inside a transaction (the record must survive a failure).
    """
    run = MaintenanceRun.objects.create(task=task, started_at=timezone.now(), actor=actor)
    try:
        yield run
    except BaseException as exc:
        run.outcome = RunOutcome.FAILED
        message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        run.detail = {**run.detail, "error": message}
        run.finished_at = timezone.now()
        with contextlib.suppress(Exception):
            run.save()
        raise
    run.outcome = RunOutcome.OK
    run.finished_at = timezone.now()
    run.save()


def maintenance_last_success(*, task: str) -> MaintenanceRun | None:
    return (
        MaintenanceRun.objects.filter(task=task, outcome=RunOutcome.OK)
        .order_by("-finished_at")
        .first()
    )


# --- backup ------------------------------------------------------------------------------


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
    progress: Progress = _quiet,
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


# --- restore -----------------------------------------------------------------------------


def _restore_guard(backup: bk.Backup) -> str:
    """Refuse unless trading is paused or stopped; returns the current mode."""
    from apps.risk.domain.modes import SystemMode
    from apps.risk.services import system_mode_get

    mode = system_mode_get()
    if mode not in (SystemMode.PAUSE, SystemMode.KILL):
        raise RestoreRefused(
            f"the system is in {mode.value.upper()}: a restore replaces the whole database, "
            "so trading must be stopped first. Run `manage.py pause --reason ... --execute` "
            "(or shutdown_graceful), then restore"
        )
    return mode.value


def backup_restore_check(*, backup: str | Path) -> bk.Backup:
    """Everything a restore checks before it touches anything: the files and the mode."""
    b = bk.backup_load(bk.backup_resolve(backup))
    bk.backup_verify(b)
    _restore_guard(b)
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
    from apps.risk.domain.modes import SystemMode
    from apps.risk.services import system_mode_get, system_mode_set

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
    return {"backup": b.name, "seconds": seconds, "restored_mode": restored_mode.value}


def backup_restore_test(
    *, actor: str, backup: str | Path | None = None, progress: Progress = _quiet
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
        run.detail["redis"] = _redis_rdb_test(b)
        audit_record(actor=actor, action="backup.restore_test", target=b.name, data=run.detail)
    return run


def _redis_rdb_test(b: bk.Backup) -> str:
    rdb = b.path("redis")
    if rdb is None or b.manifest["files"]["redis"].get("pruned_at"):
        return "no RDB in this backup"
    if not bk.rdb_header_ok(rdb):
        raise BackupInvalid(f"{rdb} is not an RDB file (bad header)")
    if bk.redis_server() is None:
        return "header ok (no redis-server to load it into)"
    try:
        with rdb_loaded(rdb) as client:
            keys = sum(_keyspace(client).values())
    except _RdbTooNew:
        return "header ok; this redis-server is older than the RDB: not loaded"
    return f"loaded into redis-server: {keys} keys"


class _RdbTooNew(BackupInvalid):
    pass


@contextlib.contextmanager
def rdb_loaded(rdb: Path) -> Iterator[Any]:
    """A throwaway redis-server (temporary directory, unix socket only) loaded with ``rdb``.

    Yields a redis client of its database 0; stopped and removed on exit. Raises
    BackupInvalid when the server cannot load the file (``_RdbTooNew`` when the file
    comes from a newer Redis than this redis-server).
    """
    import redis

    server = bk.redis_server()
    if server is None:
        raise ToolMissing("no redis-server to load the RDB into: install redis-server")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(rdb, Path(tmp) / "dump.rdb")
        sock = Path(tmp) / "redis.sock"
        proc = subprocess.Popen(  # noqa: S603 - our own tool path, no shell
            [server, "--port", "0", "--unixsocket", str(sock), "--dir", tmp,
             "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            for _ in range(100):
                if sock.exists() or proc.poll() is not None:
                    break
                time.sleep(0.05)
            if proc.poll() is not None:
                out = (proc.stdout.read() if proc.stdout else "").strip().splitlines()
                if any("RDB format version" in line for line in out):
                    raise _RdbTooNew(
                        f"{rdb} comes from a newer Redis than {server}: {' / '.join(out[-2:])}"
                    )
                raise BackupInvalid(f"redis-server cannot load {rdb}: {' / '.join(out[-2:])}")
            client = redis.Redis(unix_socket_path=str(sock), socket_timeout=30)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.BusyLoadingError:
                    time.sleep(0.05)
            try:
                yield client
            finally:
                client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _keyspace(client: Any) -> dict[int, int]:
    """{database number: keys} of a Redis server (its non-empty databases)."""
    info = client.info("keyspace")
    return {
        int(name[2:]): int(v.get("keys", 0))
        for name, v in info.items()
        if name.startswith("db") and isinstance(v, dict)
    }


def _redis_client(url: str, db: int) -> Any:
    import redis
    from redis.connection import parse_url

    kwargs = parse_url(url)
    kwargs["db"] = db
    kwargs.setdefault("socket_timeout", 30)
    return redis.Redis(**kwargs)


def redis_restore_check(*, backup: str | Path) -> bk.Backup:
    """What a Redis restore checks before touching anything: the files, the RDB, the mode."""
    b = bk.backup_load(bk.backup_resolve(backup))
    bk.backup_verify(b)
    entry = b.manifest.get("files", {}).get("redis")
    if not entry or entry.get("pruned_at"):
        why = (
            f"pruned on {entry['pruned_at'][:10]} (Redis snapshots are kept "
            f"{settings.BACKUP_RETENTION_REDIS_DAYS} days)"
            if entry
            else "taken with --skip-redis"
        )
        raise BackupInvalid(f"{b.name} has no Redis snapshot: {why}")
    _restore_guard(b)
    return b


def redis_restore(
    *, backup: str | Path, actor: str, redis_url: str | None = None, progress: Progress = _quiet
) -> dict[str, Any]:
    """Replace the Redis server's content (every database) with a backup's RDB snapshot.

    Refuses unless the mode is PAUSE or KILL and the files verify. Redis is not
    stopped: the RDB is loaded into a throwaway redis-server and copied key by key
    (DUMP / RESTORE ... REPLACE, with each key's remaining TTL) into REDIS_URL's server,
    after emptying every database either side uses (FLUSHDB each), so the result is the
    snapshot exactly and this works for a remote Redis too. Restored Celery queues hold
    the tasks queued at backup time: they run again once workers consume them (order
    sends are idempotent and the mode gate refuses them while paused).
    """
    url = redis_url or settings.REDIS_URL
    try:
        b = redis_restore_check(backup=backup)
    except RestoreRefused as exc:
        audit_record(
            actor=actor,
            action="backup.redis_restore_refused",
            target=str(backup),
            data={"reason": exc.message},
        )
        raise
    rdb = b.path("redis")
    assert rdb is not None  # redis_restore_check checked it
    started = time.monotonic()
    restored: dict[int, int] = {}
    progress(f"loading {rdb.name} into a throwaway redis-server")
    with rdb_loaded(rdb) as source:
        source_dbs = _keyspace(source)
        target_admin = _redis_client(url, 0)
        try:
            target_dbs = _keyspace(target_admin)
        except Exception as exc:  # noqa: BLE001 - redis-py's errors, named in the message
            raise BackupError(f"cannot reach Redis at {bk.mask_url(url)}: {exc}") from exc
        finally:
            target_admin.close()
        for db in sorted(set(source_dbs) | set(target_dbs)):
            progress(f"database {db}: {source_dbs.get(db, 0)} keys")
            restored[db] = _redis_copy_db(source, url, db)
    seconds = round(time.monotonic() - started, 3)
    detail = {
        "backup": b.name,
        "redis": bk.mask_url(url),
        "keys": {str(db): n for db, n in restored.items()},
        "seconds": seconds,
    }
    audit_record(actor=actor, action="backup.redis_restore", target=b.name, data=detail)
    return detail


def _redis_copy_db(source: Any, url: str, db: int, batch: int = 500) -> int:
    """FLUSHDB database ``db`` of the target, then copy the source's keys into it."""
    src = source.connection_pool.connection_kwargs
    import redis

    src_db = redis.Redis(unix_socket_path=src["path"], db=db, socket_timeout=30)
    dst = _redis_client(url, db)
    copied = 0
    try:
        dst.flushdb()
        keys: list[bytes] = []

        def flush(keys: list[bytes]) -> int:
            pipe = src_db.pipeline(transaction=False)
            for key in keys:
                pipe.pttl(key)
                pipe.dump(key)
            answers = pipe.execute()
            out = dst.pipeline(transaction=False)
            n = 0
            for i, key in enumerate(keys):
                ttl, payload = answers[2 * i], answers[2 * i + 1]
                if payload is None or ttl == -2:  # expired meanwhile
                    continue
                out.restore(key, max(ttl, 0), payload, replace=True)
                n += 1
            out.execute()
            return n

        for key in src_db.scan_iter(count=batch):
            keys.append(key)
            if len(keys) >= batch:
                copied += flush(keys)
                keys = []
        if keys:
            copied += flush(keys)
    finally:
        src_db.close()
        dst.close()
    return copied


# --- maintenance jobs ----------------------------------------------------------------------


def vacuum_run(*, actor: str) -> dict[str, Any]:
    """VACUUM (ANALYZE) the whole database (weekly, spec 7.1): reclaims space, refreshes stats."""
    started = time.monotonic()
    with bk.pg_connect(autocommit=True) as conn:
        before = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        conn.execute("VACUUM (ANALYZE)")
        after = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    detail = {
        "seconds": round(time.monotonic() - started, 3),
        "bytes_before": before,
        "bytes_after": after,
    }
    audit_record(actor=actor, action="maintenance.vacuum", data=detail)
    return detail


def logs_rotate(
    *, actor: str, now: datetime | None = None, log_dir: Path | None = None
) -> dict[str, Any]:
    """Rotate stale log files and delete rotated ones older than LOG_RETENTION_DAYS.

    The file handler (apps/ops/logging.py) rotates each process's file at midnight
    UTC on its next write; a process that wrote nothing since is rotated here, and
    files of processes that no longer run are removed after the retention.
    """
    from apps.ops.logging import logs_prune

    directory = log_dir or (Path(settings.LOG_DIR) if getattr(settings, "LOG_DIR", "") else None)
    if directory is None:
        return {
            "skipped": "LOG_DIR is not set: logs go to stdout (the container runtime rotates them)"
        }
    detail = logs_prune(
        directory=Path(directory),
        now=now or timezone.now(),
        keep_days=getattr(settings, "LOG_RETENTION_DAYS", 90),
    )
    if detail["deleted"] or detail["rotated"]:
        audit_record(actor=actor, action="maintenance.logs_rotate", data=detail)
    return detail


def heartbeat_beat(*, now: datetime | None = None) -> None:
    """Written every minute by the ops.heartbeat task (beat sends it, a worker runs it)."""
    from django.core.cache import cache

    cache.set(HEARTBEAT_KEY, (now or timezone.now()).timestamp(), timeout=24 * 3600)


# --- mode runbooks -------------------------------------------------------------------------


def mode_change(*, target: str, actor: str, reason: str, execute: bool) -> str:
    """pause / resume / kill from the command line: what would change, or change it."""
    from apps.risk.domain.modes import SystemMode
    from apps.risk.services import system_mode_get

    if not reason.strip():
        raise OpsError('a reason is required (--reason "..."): it goes into the audit trail')
    current = system_mode_get()
    wanted = SystemMode(target)
    plan = f"mode {current.value.upper()} -> {wanted.value.upper()} (reason: {reason})"
    if wanted is SystemMode.KILL:
        plan += "; the kill switch cancels every open order and closes every position"
    if not execute:
        return f"would change {plan}"
    if wanted is SystemMode.KILL:
        from apps.trading.services.kill_switch import kill_switch_engage

        report = kill_switch_engage(actor=actor, source="cli", reason=reason)
        return f"changed {plan}: {report}"
    from apps.risk.services import system_mode_set

    try:
        system_mode_set(mode=wanted, actor=actor, source="cli", reason=reason)
    except Exception as exc:  # the risk service's refusal (ModeChangeRefused), shown as is
        message = getattr(exc, "message", None)
        if message is None:
            raise
        raise OpsError(message) from exc
    return f"changed {plan}"


# --- graceful shutdown (runbook 6.2) ------------------------------------------------------


def working_orders() -> list[Any]:
    from apps.model.orders import OPEN_STATUSES
    from apps.trading.models import Order

    return list(Order.objects.filter(status__in=OPEN_STATUSES).select_related("instrument"))


@dataclass
class ShutdownReport:
    paused: str
    orders_left: list[str]
    waited_seconds: float
    engine: str


def shutdown_graceful(
    *,
    actor: str,
    reason: str,
    timeout: float,
    poll: float = 1.0,
    progress: Callable[[int], None] | None = None,
    engine_wait: float = 30.0,
) -> ShutdownReport:
    """Runbook 6.2: PAUSE, wait for working orders (up to ``timeout``), stop the engine.

    The engine is signalled with SIGTERM through its pid file (ENGINE_PIDFILE): it
    finishes the bar in progress and stops. Orders still working at the timeout are
    reported, not cancelled (PAUSE lets them complete or be cancelled by their owner;
    use `kill` to cancel everything).
    """
    from apps.risk.domain.modes import SystemMode
    from apps.risk.services import system_mode_get

    mode = system_mode_get()
    if mode in (SystemMode.PAUSE, SystemMode.KILL):
        paused = f"already {mode.value.upper()}"
    else:
        paused = mode_change(
            target=SystemMode.PAUSE.value, actor=actor, reason=reason, execute=True
        )
    started = time.monotonic()
    left = working_orders()
    while left and time.monotonic() - started < timeout:
        if progress:
            progress(len(left))
        time.sleep(poll)
        left = working_orders()
    waited = round(time.monotonic() - started, 1)
    from apps.ops.pidfile import engine_stop

    engine = engine_stop(wait=engine_wait)
    report = ShutdownReport(
        paused=paused,
        orders_left=[
            f"{o.client_order_id} {o.side} {o.quantity} {o.instrument} {o.status}" for o in left
        ],
        waited_seconds=waited,
        engine=engine,
    )
    audit_record(
        actor=actor,
        action="ops.shutdown_graceful",
        data={"orders_left": report.orders_left, "waited_seconds": waited, "engine": engine},
    )
    return report


# --- checklists (spec 10) -----------------------------------------------------------------


def checklist_run(
    *, kind: str, actor: str, now: datetime | None = None, notify: bool = True
) -> ChecklistRun:
    """Build the pre- or post-market checklist, store it, and notify it (unless ``notify``
    is False) through apps.notifications: Telegram always (a daily report is read there),
    plus e-mail when an item failed (severity "error"; else "warning"). Delivery happens
    after commit in the notification tasks (admin: Notifications, code checklist.<kind>).
    """
    from apps.ops.checklists import checklist_items, checklist_text

    now = now or timezone.now()
    items = checklist_items(kind=kind, now=now)
    run = ChecklistRun.objects.create(kind=kind, items=items, actor=actor)
    if notify:
        from apps.notifications.services import notify as notify_send

        title, _, body = checklist_text(run).partition("\n")
        failed = [i["key"] for i in items if i["status"] == "fail"]
        notify_send(
            severity="error" if failed else "warning",
            code=f"checklist.{kind}",
            title=title,
            body=body,
            dedup_key=f"checklist:{run.pk}",
            data={"checklist": run.pk, "failed": failed},
        )
    return run


@transaction.atomic
def checklist_item_tick(*, run_id: int, key: str, actor: str, note: str = "") -> ChecklistRun:
    """Tick a manual item (e.g. the economic calendar) of a checklist; audited."""
    run = ChecklistRun.objects.select_for_update().get(pk=run_id)
    for item in run.items:
        if item["key"] == key:
            if not item.get("manual"):
                raise OpsError(f"{item['label']} is checked by the system, not ticked by hand")
            item.update(
                status="done",
                ticked_by=actor,
                ticked_at=timezone.now().isoformat(),
                detail=note.strip() or item.get("detail", ""),
            )
            break
    else:
        raise OpsError(f"checklist {run_id} has no item {key!r}")
    run.save(update_fields=["items"])
    audit_record(
        actor=actor,
        action="checklist.tick",
        target=f"checklist:{run.pk}",
        data={"item": key, "note": note},
    )
    return run
