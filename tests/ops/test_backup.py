"""Backups on the real PostgreSQL and Redis: backup, restore, restore_test, bad input."""

from __future__ import annotations

import errno
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from apps.audit.models import AuditEvent
from apps.marketdata.models import Bar
from apps.ops import backup as bk
from apps.ops.exceptions import BackupError, BackupInvalid, RestoreRefused, ToolMissing
from apps.ops.metrics import MaintenanceCollector
from apps.ops.models import MaintenanceRun
from apps.ops.services.backups import backup_create, backup_prune
from apps.ops.services.restore import backup_restore, backup_restore_test
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.models import Fill, Order, Position
from tests.ops.ops_data import seed_history, table_fingerprint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup_dir(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


def pause() -> None:
    system_mode_set(mode=SystemMode.PAUSE, actor="test", source="cli", reason="restore test")


def only_backup(base: Path) -> Path:
    folders = [p for p in base.iterdir()]
    assert len(folders) == 1, folders
    return folders[0]


def test_backup_when_run_then_manifest_has_sizes_checksums_and_row_counts(backup_dir):
    # Arrange
    expected = seed_history()
    # Act
    call_command("backup", verbosity=0)
    # Assert
    folder = only_backup(backup_dir)
    manifest = json.loads((folder / "manifest.json").read_text())
    for kind, name in (("postgres", "postgres.dump"), ("redis", "redis.rdb")):
        entry = manifest["files"][kind]
        assert entry["path"] == name
        assert entry["bytes"] == (folder / name).stat().st_size > 0
        assert entry["sha256"] == bk.sha256_file(folder / name)
    assert (folder / "postgres.dump").read_bytes()[:5] == b"PGDMP"  # custom format
    assert (folder / "redis.rdb").read_bytes()[:5] == b"REDIS"
    assert {k: v["rows"] for k, v in manifest["tables"].items()} == {
        k: n for k, (n, _) in expected.items()
    }
    assert manifest["database"]["server_version_num"] // 10000 >= 15
    run = MaintenanceRun.objects.get(task="backup")
    assert run.outcome == "ok"
    assert run.actor.startswith("cli:")


def test_backup_then_delete_then_restore_when_paused_then_identical_rows_and_content(backup_dir):
    # Arrange
    before = seed_history()
    result = backup_create(actor="test")
    Fill.objects.all().delete()
    Position.objects.all().delete()
    Order.objects.all().delete()
    Bar.objects.filter(ts__gte=timezone.now() - timedelta(days=3650)).delete()
    assert table_fingerprint()["orders"][0] == 0
    pause()
    # Act
    call_command("restore", str(result.folder), "--yes", verbosity=0)
    # Assert
    after = table_fingerprint()
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    # the audit trail is the backup's, plus what the restore itself recorded
    assert after["audit_events"][0] == before["audit_events"][0] + 2
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True))[-2:] == [
        "mode.set",
        "backup.restore",
    ]
    # the backup was taken in NORMAL: the restored system is left paused
    assert system_mode_get() is SystemMode.PAUSE


def test_restore_when_mode_normal_then_refused_and_nothing_changed(backup_dir):
    # Arrange
    seed_history()
    result = backup_create(actor="test")
    Fill.objects.all().delete()
    after_delete = table_fingerprint()
    # Act / Assert
    with pytest.raises(CommandError, match="NORMAL.*trading must be stopped"):
        call_command("restore", str(result.folder), "--yes", verbosity=0)
    assert table_fingerprint() == after_delete


def test_restore_when_not_confirmed_then_nothing_changed(backup_dir, monkeypatch):
    seed_history()
    result = backup_create(actor="test")
    Fill.objects.all().delete()
    pause()
    monkeypatch.setattr("builtins.input", lambda _: "no")
    with pytest.raises(CommandError, match="not confirmed"):
        call_command("restore", str(result.folder), verbosity=0)
    assert Fill.objects.count() == 0


def test_restore_when_stdin_empty_then_clear_error_and_nothing_changed(backup_dir, monkeypatch):
    """`restore BACKUP < /dev/null` (a script without --yes): input() meets EOF."""
    import io

    seed_history()
    result = backup_create(actor="test")
    Fill.objects.all().delete()
    pause()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    with pytest.raises(CommandError) as raised:
        call_command("restore", str(result.folder), verbosity=0, stdout=io.StringIO())

    assert str(raised.value) == (
        "no confirmation: stdin is empty or closed (a script, no terminal); "
        "pass --yes to restore without asking. Nothing changed"
    )
    assert Fill.objects.count() == 0


def test_restore_when_backup_missing_then_clear_error(backup_dir):
    pause()
    with pytest.raises(CommandError, match="backup not found: nope"):
        call_command("restore", "nope", "--yes", verbosity=0)


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_restore_when_backup_corrupted_then_refused_before_touching_the_database(
    backup_dir, damage
):
    # Arrange
    seed_history()
    result = backup_create(actor="test")
    Fill.objects.all().delete()
    pause()
    dump = result.folder / "postgres.dump"
    if damage == "flip":
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0xFF
        dump.write_bytes(bytes(data))
    elif damage == "truncate":
        dump.write_bytes(dump.read_bytes()[:-100])
    else:
        (result.folder / "manifest.json").write_text("{not json")
    # Act / Assert
    with pytest.raises(CommandError, match="corrupted|truncated|not JSON"):
        call_command("restore", str(result.folder), "--yes", verbosity=0)
    assert Fill.objects.count() == 0  # untouched


def test_restore_test_when_backup_good_then_ok_recorded_and_temp_database_dropped(backup_dir):
    # Arrange
    seed_history()
    backup_create(actor="test")
    # Act
    call_command("restore_test", verbosity=0)
    # Assert
    run = MaintenanceRun.objects.get(task="restore_test")
    assert run.outcome == "ok"
    assert run.detail["tables"]["bars"] == 200
    assert run.detail["redis"].startswith(("loaded into redis-server", "header ok"))
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE '%%_restoretest_%%'")
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_restore_test_when_dump_damaged_then_failure_recorded(backup_dir, damage):
    # Arrange
    seed_history()
    result = backup_create(actor="test")
    dump = result.folder / "postgres.dump"
    data = bytearray(dump.read_bytes())
    if damage == "flip":
        for i in range(200, len(data), 97):
            data[i] ^= 0x5A
    else:
        data = data[: len(data) // 2]
    dump.write_bytes(bytes(data))
    # Act / Assert
    with pytest.raises(CommandError, match="restore test FAILED"):
        call_command("restore_test", verbosity=0)
    run = MaintenanceRun.objects.get(task="restore_test")
    assert run.outcome == "failed"
    assert "sha256" in run.detail["error"] or "truncated" in run.detail["error"]


def test_restore_test_when_dump_damaged_and_manifest_rewritten_then_restore_itself_fails(
    backup_dir,
):
    """Someone 'fixed' the checksums: the dump must still fail at pg_restore or on the data."""
    # Arrange
    seed_history()
    result = backup_create(actor="test")
    dump = result.folder / "postgres.dump"
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    manifest = json.loads((result.folder / "manifest.json").read_text())
    manifest["files"]["postgres"] = bk.file_entry(dump)
    (result.folder / "manifest.json").write_text(json.dumps(manifest))
    # Act / Assert
    with pytest.raises(BackupInvalid, match="does not restore|different data"):
        backup_restore_test(actor="test")
    assert MaintenanceRun.objects.get(task="restore_test").outcome == "failed"


def test_restore_test_when_table_content_differs_from_manifest_then_failure(backup_dir):
    seed_history()
    result = backup_create(actor="test")
    manifest = json.loads((result.folder / "manifest.json").read_text())
    manifest["tables"]["fills"]["md5"] = "0" * 32
    (result.folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupInvalid, match="fills: rows 3 -> 3, content differs"):
        backup_restore_test(actor="test")


def test_backup_when_directory_unwritable_then_clear_error_and_old_backups_kept(
    backup_dir, settings
):
    # Arrange: one good backup, then the directory becomes read-only
    backup_create(actor="test")
    before = sorted(p.name for p in backup_dir.iterdir())
    if os.geteuid() == 0:
        # root ignores permission bits: use a read-only mount instead, if there is one
        readonly = Path("/proc/sys")
        if os.access(readonly, os.W_OK):
            pytest.skip("running as root and no read-only directory to test with")
        settings.BACKUP_DIR = readonly
    else:
        backup_dir.chmod(0o555)
    try:
        # Act / Assert
        with pytest.raises(CommandError, match="not writable"):
            call_command("backup", verbosity=0)
    finally:
        backup_dir.chmod(0o755)
    assert sorted(p.name for p in backup_dir.iterdir()) == before
    assert MaintenanceRun.objects.filter(task="backup", outcome="failed").count() == 1


def test_backup_when_directory_cannot_be_created_then_clear_error(tmp_path, settings):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings.BACKUP_DIR = blocker / "backups"  # a path under a regular file
    with pytest.raises(CommandError, match="cannot create the backup directory"):
        call_command("backup", verbosity=0)


def test_backup_when_disk_fills_during_dump_then_partial_removed_and_old_backups_kept(
    backup_dir, monkeypatch
):
    """A full disk, simulated: the dump writes part of its file, then fails with ENOSPC
    (a small quota or tmpfs is not available to the tests)."""
    # Arrange
    seed_history()
    good = backup_create(actor="test")
    real_run_tool = bk.run_tool

    def filling_disk(args, **kwargs):
        if "pg_dump" in args[0] and "--version" not in args:
            target = next(a.split("=", 1)[1] for a in args if a.startswith("--file="))
            Path(target).write_bytes(b"PGDMP" + b"\0" * 4096)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
        return real_run_tool(args, **kwargs)

    monkeypatch.setattr(bk, "run_tool", filling_disk)
    # Act / Assert
    with pytest.raises(BackupError, match="No space left on device.*disk full"):
        backup_create(actor="test", now=timezone.now() + timedelta(seconds=5))
    assert [p.name for p in backup_dir.iterdir()] == [good.folder.name]
    bk.backup_verify(bk.backup_load(good.folder))


def test_backup_when_redis_snapshot_fails_then_nothing_kept(backup_dir, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with pytest.raises(CommandError, match="redis-cli --rdb failed"):
        call_command("backup", verbosity=0)
    assert list(backup_dir.iterdir()) == []


def test_pg_tool_when_no_matching_major_then_names_what_it_found(settings):
    settings.PG_BIN_DIR = ""
    with pytest.raises(ToolMissing, match="no pg_dump for PostgreSQL 9 .*postgresql-client-9"):
        bk.pg_tool("pg_dump", 9)


def test_pg_tool_when_server_major_then_the_matching_binary():
    with connection.cursor() as cur:
        cur.execute("SHOW server_version_num")
        major = int(cur.fetchone()[0]) // 10000
    path = bk.pg_tool("pg_dump", major)
    assert bk._tool_major(path) == major


def test_prune_when_backups_old_then_pg_after_30_days_redis_after_7(backup_dir):
    # Arrange: backups 1, 10 and 40 days old
    now = timezone.now()
    made = {}
    for days in (40, 10, 1):
        made[days] = backup_create(actor="test", now=now - timedelta(days=days)).folder
    # Act (backup_create prunes too: the explicit call must find nothing left to do)
    assert backup_prune(actor="test", now=now) == []
    # Assert
    assert not made[40].exists()
    assert (made[10] / "postgres.dump").exists()
    assert not (made[10] / "redis.rdb").exists()
    assert (made[1] / "redis.rdb").exists()
    pruned_events = AuditEvent.objects.filter(action="backup.prune")
    assert any(made[40].name in e.data["removed"] for e in pruned_events)
    pruned = json.loads((made[10] / "manifest.json").read_text())["files"]["redis"]
    assert pruned["pruned_at"]
    bk.backup_verify(bk.backup_load(made[10]))  # still verifies (PostgreSQL only)


def test_metrics_when_backup_succeeded_then_last_success_timestamps(backup_dir):
    call_command("backup", "--skip-redis", verbosity=0)
    registry = CollectorRegistry()
    registry.register(MaintenanceCollector())
    text = generate_latest(registry).decode()
    last = MaintenanceRun.objects.get(task="backup", outcome="ok").finished_at.timestamp()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("backup_last_success_timestamp", ())] == pytest.approx(last)
    assert samples[("maintenance_last_success_timestamp", (("task", "backup"),))] == pytest.approx(
        last
    )
    assert 'maintenance_last_success_timestamp{task="backup"}' in text


def test_metrics_when_just_restored_then_last_backup_is_the_restored_one(backup_dir):
    """The dump predates its own success record: without care the restored database says
    "no backup" (0) and BackupMissing fires until the next one."""
    call_command("backup", "--skip-redis", verbosity=0)
    folder = only_backup(backup_dir)
    created = json.loads((folder / "manifest.json").read_text())["created_at"]
    pause()

    call_command("restore", str(folder), "--yes", verbosity=0)

    registry = CollectorRegistry()
    registry.register(MaintenanceCollector())
    assert registry.get_sample_value("backup_last_success_timestamp") == pytest.approx(
        timezone.datetime.fromisoformat(created).timestamp()
    )
    run = MaintenanceRun.objects.get(task="backup", outcome="ok")
    assert run.detail["backup"] == folder.name


def test_restore_when_backup_from_newer_server_then_refused(backup_dir):
    result = backup_create(actor="test")
    manifest = json.loads((result.folder / "manifest.json").read_text())
    manifest["database"]["server_version_num"] = 990000
    (result.folder / "manifest.json").write_text(json.dumps(manifest))
    pause()
    with pytest.raises(RestoreRefused, match="PostgreSQL 99"):
        backup_restore(backup=result.folder, actor="test")


def test_restore_by_name_when_in_backup_dir_then_found(backup_dir):
    seed_history()
    result = backup_create(actor="test")
    pause()
    out = backup_restore(backup=result.folder.name, actor="test")
    assert out["backup"] == result.folder.name
