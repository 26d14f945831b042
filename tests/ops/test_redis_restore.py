"""Restoring the Redis snapshot of a backup into a PRIVATE redis-server (temporary
directory, free port): never the machine's Redis on 6379."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import AuditEvent
from apps.ops.exceptions import BackupInvalid, RestoreRefused
from apps.ops.services.backups import backup_create
from apps.ops.services.redis_restore import redis_restore
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_set

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path, settings):
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(server).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server missing under CI: .ci/run must install redis-server")
        pytest.skip("needs the Debian package redis-server")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
         "--save", "", "--appendonly", "no", "--databases", "16"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    settings.REDIS_URL = url
    settings.BACKUP_DIR = tmp_path / "backups"
    try:
        yield port
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def db(port: int, n: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, db=n, decode_responses=True)


def seed(port: int) -> None:
    d0, d3 = db(port, 0), db(port, 3)
    d0.set("plain", "one")
    d0.hset("hash", mapping={"a": "1", "b": "2"})
    d0.rpush("celery", "task-1", "task-2")
    d0.set("ttl-key", "soon", ex=1000)
    d3.set("cache:x", "value-in-db3")


def snapshot(port: int) -> dict[int, dict[str, object]]:
    out: dict[int, dict[str, object]] = {}
    for n in range(16):
        c = db(port, n)
        keys = sorted(c.keys())
        if not keys:
            continue
        values: dict[str, object] = {}
        for k in keys:
            kind = c.type(k)
            values[k] = {
                "string": c.get,
                "hash": c.hgetall,
                "list": lambda key, c=c: c.lrange(key, 0, -1),
            }[kind](k)
        out[n] = values
    return out


def pause() -> None:
    system_mode_set(mode=SystemMode.PAUSE, actor="test", source="cli", reason="redis restore")


def test_redis_restore_when_paused_then_every_database_is_the_snapshot_with_ttls(private_redis):
    # Arrange
    port = private_redis
    seed(port)
    before = snapshot(port)
    result = backup_create(actor="test")
    d0 = db(port, 0)
    d0.set("plain", "changed")
    d0.delete("hash")
    d0.set("new-after-backup", "x")
    db(port, 5).set("other-db", "y")
    pause()
    # Act
    call_command("restore", str(result.folder), "--redis-only", "--yes", verbosity=0)
    # Assert
    assert snapshot(port) == before
    ttl = d0.ttl("ttl-key")
    assert 900 < ttl <= 1000
    assert d0.ttl("plain") == -1
    event = AuditEvent.objects.get(action="backup.redis_restore")
    assert event.actor.startswith("cli:")
    assert event.data["keys"] == {"0": 4, "3": 1, "5": 0}


def test_redis_restore_when_mode_normal_then_refused_and_redis_unchanged(private_redis):
    port = private_redis
    seed(port)
    result = backup_create(actor="test")
    db(port, 0).set("plain", "changed")
    changed = snapshot(port)

    with pytest.raises(CommandError, match="NORMAL.*trading must be stopped"):
        call_command("restore", str(result.folder), "--redis-only", "--yes", verbosity=0)
    assert snapshot(port) == changed


def test_redis_restore_when_backup_has_no_snapshot_then_clear_error(private_redis):
    result = backup_create(actor="test", skip_redis=True)
    pause()

    with pytest.raises(BackupInvalid, match="has no Redis snapshot: taken with --skip-redis"):
        redis_restore(backup=result.folder, actor="test")


def test_redis_restore_when_rdb_corrupted_then_refused_before_touching_redis(private_redis):
    port = private_redis
    seed(port)
    result = backup_create(actor="test")
    rdb = result.folder / "redis.rdb"
    rdb.write_bytes(rdb.read_bytes()[:-8] + b"\0" * 8)
    db(port, 0).set("plain", "changed")
    changed = snapshot(port)
    pause()

    with pytest.raises(BackupInvalid, match="redis file .* fails its sha256 check"):
        redis_restore(backup=result.folder, actor="test")
    assert snapshot(port) == changed


def test_restore_when_not_confirmed_then_redis_unchanged(private_redis, monkeypatch):
    port = private_redis
    seed(port)
    result = backup_create(actor="test")
    db(port, 0).flushdb()
    pause()
    monkeypatch.setattr("builtins.input", lambda _: "no")

    with pytest.raises(CommandError, match="not confirmed"):
        call_command("restore", str(result.folder), "--redis-only", verbosity=0)
    assert 0 not in snapshot(port)


def test_refused_restore_when_normal_then_audited(private_redis):
    seed(private_redis)
    result = backup_create(actor="test")

    with pytest.raises(RestoreRefused):
        redis_restore(backup=result.folder, actor="test")
    assert AuditEvent.objects.filter(action="backup.redis_restore_refused").count() == 1


def test_restore_with_redis_when_paused_then_database_and_redis_both_restored(private_redis):
    from apps.trading.models import Fill
    from tests.ops.ops_data import seed_history, table_fingerprint

    port = private_redis
    before_rows = seed_history()
    seed(port)
    before = snapshot(port)
    result = backup_create(actor="test")
    Fill.objects.all().delete()
    db(port, 0).flushdb()
    pause()

    call_command("restore", str(result.folder), "--redis", "--yes", verbosity=0)

    assert table_fingerprint()["fills"] == before_rows["fills"]
    assert snapshot(port) == before
