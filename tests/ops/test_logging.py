"""Logs: secrets masked, JSON in staging/prod, one file per process rotated daily, 90 kept."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apps.ops.logging import (
    DailyFileHandler,
    JsonFormatter,
    SecretMaskingFilter,
    logs_prune,
    process_role,
)

ROOT = Path(__file__).resolve().parents[2]
BOT_TOKEN = "7412345678:AAF3x_kq9T0pLmN2vB8cD4eF6gH1iJ5kLzQ"  # a made-up token


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"connect failed: password=hunter2secret url={BOT_TOKEN}")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.ERROR, __file__, 1, msg, args, exc_info)


@pytest.fixture
def masking(settings):
    settings.KRAKEN_API_SECRET = "kraken-secret-value-123"
    settings.DATABASES["default"]["PASSWORD"] = "db-pass-xyz789"
    return SecretMaskingFilter()


@pytest.mark.parametrize(
    ("raw", "leak"),
    [
        ("login password=hunter2secret ok", "hunter2secret"),
        ('{"api_key": "abcdef123456"}', "abcdef123456"),
        ("token: sk_live_999999999", "sk_live_999999999"),
        ("DB_PASSWORD=letmein1 started", "letmein1"),
        (f"POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage", BOT_TOKEN),
        ("connect postgres://trading:s3cr3tpw@db:5432/trading", "s3cr3tpw"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("value of a setting kraken-secret-value-123 leaked", "kraken-secret-value-123"),
        ("db said db-pass-xyz789", "db-pass-xyz789"),
    ],
)
def test_filter_when_message_holds_a_secret_then_masked(masking, raw, leak):
    rec = record(raw)
    assert masking.filter(rec) is True
    assert leak not in rec.getMessage()
    assert "***" in rec.getMessage()


def test_filter_when_secret_in_args_and_exception_then_masked_everywhere(masking):
    rec = record("broker login %s with %s", "user", "password=hunter2secret", exc=True)
    masking.filter(rec)
    line = logging.Formatter("%(message)s").format(rec)
    assert "hunter2secret" not in line
    assert BOT_TOKEN not in line
    assert "RuntimeError" in line  # the traceback is kept, masked


def test_filter_when_nothing_secret_then_message_unchanged(masking):
    rec = record("order %s filled at %s", "abc", "60000.5")
    masking.filter(rec)
    assert rec.getMessage() == "order abc filled at 60000.5"


def test_json_formatter_when_exception_masked_then_still_in_the_line(masking):
    rec = record("failed", exc=True)
    masking.filter(rec)
    payload = json.loads(JsonFormatter().format(rec))
    assert payload["message"] == "failed"
    assert "RuntimeError" in payload["exc"]
    assert "hunter2secret" not in payload["exc"]


def settings_logging(env: dict[str, str]) -> dict:
    """LOGGING as a fresh process builds it from the environment."""
    code = (
        "import json, os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
        "'tradebot.settings.test'); from django.conf import settings; "
        "print(json.dumps(settings.LOGGING))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_settings_when_log_dir_set_then_daily_file_kept_90_days_and_masked(tmp_path):
    cfg = settings_logging({"LOG_DIR": str(tmp_path), "ENVIRONMENT": "test"})
    handler = cfg["handlers"]["file"]
    assert handler["()"] == "apps.ops.logging.DailyFileHandler"
    assert handler["backupCount"] == 90
    assert handler["directory"] == str(tmp_path)
    assert handler["filters"] == ["mask_secrets"]
    assert cfg["handlers"]["console"]["filters"] == ["mask_secrets"]
    assert "file" in cfg["root"]["handlers"]


def test_settings_when_no_log_dir_then_console_only():
    cfg = settings_logging({"LOG_DIR": "", "ENVIRONMENT": "test"})
    assert "file" not in cfg["handlers"]


def test_handler_when_built_then_timed_rotation_at_midnight_utc(tmp_path):
    handler = DailyFileHandler(str(tmp_path), backupCount=90, role="engine")
    try:
        assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
        assert (handler.when, handler.utc, handler.backupCount) == ("MIDNIGHT", True, 90)
        assert handler.baseFilename == str(tmp_path / "engine.log")
    finally:
        handler.close()


def test_handler_when_midnight_passes_then_rotated_to_dated_file(tmp_path):
    handler = DailyFileHandler(str(tmp_path), backupCount=90, role="web")
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        handler.emit(record("before midnight"))
        handler.rolloverAt = int(time.time()) - 1  # as if midnight UTC just passed
        handler.emit(record("after midnight"))
    finally:
        handler.close()
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert len(rotated) == 2
    assert rotated[0] == "web.log"
    assert rotated[1].startswith("web.log.20")
    assert (tmp_path / "web.log").read_text() == "after midnight\n"
    assert (tmp_path / rotated[1]).read_text() == "before midnight\n"


def test_handler_when_files_created_or_rotated_then_0640_whatever_the_umask(tmp_path):
    import stat

    old = os.umask(0)
    (tmp_path / "worker.log").write_text("old line\n")
    (tmp_path / "worker.log").chmod(0o666)  # left world-writable by an earlier version
    try:
        web = DailyFileHandler(str(tmp_path / "logs"), role="web")
        worker = DailyFileHandler(str(tmp_path), role="worker")
        for handler in (web, worker):
            handler.emit(record("a line"))
        web.rolloverAt = int(time.time()) - 1
        web.emit(record("after midnight"))
    finally:
        os.umask(old)
        web.close()
        worker.close()

    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "logs").iterdir()}
    assert len(modes) == 2  # web.log and its rotated file
    assert set(modes.values()) == {0o640}
    assert stat.S_IMODE((tmp_path / "worker.log").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o750


def test_handler_when_another_process_rotated_then_reopens_not_overwrites(tmp_path):
    a = DailyFileHandler(str(tmp_path), role="worker")
    b = DailyFileHandler(str(tmp_path), role="worker")  # a forked child with its own copy
    for h in (a, b):
        h.setFormatter(logging.Formatter("%(message)s"))
    try:
        a.emit(record("a1"))
        b.emit(record("b1"))
        a.rolloverAt = b.rolloverAt = int(time.time()) - 1
        a.emit(record("a2"))  # a rotates
        b.emit(record("b2"))  # b finds today's file there: reopens, keeps the history
    finally:
        a.close()
        b.close()
    dated = [p for p in tmp_path.iterdir() if p.name != "worker.log"]
    assert len(dated) == 1
    assert dated[0].read_text() == "a1\nb1\n"
    assert (tmp_path / "worker.log").read_text() == "a2\nb2\n"


def test_prune_when_files_older_than_90_days_then_deleted_and_stale_live_files_rotated(tmp_path):
    now = datetime(2026, 6, 30, 0, 30, tzinfo=UTC)
    old = tmp_path / f"web.log.{(now - timedelta(days=91)):%Y-%m-%d}"
    kept = tmp_path / f"web.log.{(now - timedelta(days=89)):%Y-%m-%d}"
    stale = tmp_path / "beat.log"
    for p in (old, kept, stale):
        p.write_text("x\n")
    yesterday = (now - timedelta(days=1)).timestamp()
    os.utime(stale, (yesterday, yesterday))
    result = logs_prune(directory=tmp_path, now=now, keep_days=90)
    assert result["deleted"] == [old.name]
    assert result["rotated"] == ["beat.log.2026-06-29"]
    assert kept.exists()
    assert not old.exists()
    assert not stale.exists()


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (
            ["/app/.venv/bin/celery", "-A", "tradebot", "worker", "-Q", "execution"],
            "celery-worker-execution",
        ),
        (["/app/.venv/bin/celery", "-A", "tradebot", "beat"], "celery-beat"),
        (["/app/.venv/bin/daphne", "tradebot.asgi:application"], "web"),
        (["manage.py", "run_engine"], "run_engine"),
    ],
)
def test_process_role_when_argv_then_file_name(argv, role, monkeypatch):
    monkeypatch.delenv("LOG_PROCESS_NAME", raising=False)
    assert process_role(argv) == role


def test_celery_worker_when_json_and_log_dir_then_logs_json_masked_into_its_file(tmp_path):
    """A real worker started as docker/entrypoint.sh starts it: its own lines and Celery's
    (an unregistered task's body, which Celery logs in full) come out as JSON lines,
    masked, on stdout and in its own file in LOG_DIR."""
    from celery import Celery

    secret = "kraken-secret-value-123456"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    env = {
        **os.environ,
        "LOG_FORMAT": "json",
        "LOG_DIR": str(tmp_path),
        "KRAKEN_API_SECRET": secret,
        "CELERY_BROKER_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        # CI runs as root; the image's worker does not (Celery warns before logging starts).
        "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges",
    }
    queue = f"logtest-{os.getpid()}"
    out = tmp_path / "stdout.txt"
    celery = Path(sys.executable).parent / "celery"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(celery), "-A", "tradebot", "-q", "worker", "-Q", queue, "-P", "solo",
             "-l", "INFO", "-n", f"{queue}@localhost",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    client = Celery(broker=redis_url)
    try:
        deadline = time.monotonic() + 60
        while b"ready" not in out.read_bytes():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        client.send_task("tests.not_a_task", args=[f"api_secret={secret}", secret], queue=queue)
        while b"not_a_task" not in out.read_bytes():
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        printed = out.read_text()  # before the shutdown message Celery prints plain
    finally:
        proc.terminate()
        proc.wait(30)
        client.close()

    assert secret not in printed
    lines = [line for line in printed.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("not_a_task" in r["message"] and "***" in r["message"] for r in records)
    worker_log = (tmp_path / f"celery-worker-{queue}.log").read_text()
    assert secret not in worker_log
    assert "not_a_task" in worker_log
    assert [json.loads(line)["logger"] for line in worker_log.splitlines() if line.strip()]
