"""Redis snapshots: loading an RDB into a throwaway redis-server, testing it, restoring it key by key."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.audit.services import audit_record
from apps.ops import backup as bk
from apps.ops.exceptions import BackupError, BackupInvalid, RestoreRefused, ToolMissing
from apps.ops.services.common import Progress, quiet, restore_guard


def redis_rdb_test(b: bk.Backup) -> str:
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
    restore_guard(b)
    return b


def redis_restore(
    *, backup: str | Path, actor: str, redis_url: str | None = None, progress: Progress = quiet
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
