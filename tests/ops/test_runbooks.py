"""Runbook commands: healthcheck, predeploy_check, pause/resume/kill, shutdown_graceful,
and the /health/ready JSON and readiness page."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.pidfile import pidfile as engine_pidfile
from apps.marketdata.models import FeedStatus
from apps.notifications.models import Alert
from apps.ops import health
from apps.ops.models import MaintenanceRun
from apps.ops.pidfile import engine_pid
from apps.ops.services.maintenance import heartbeat_beat
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.services.kill_switch import kill_switch_engage
from tests.panel.conftest import otp_login
from tests.trading.factories import accepted_order, instrument, paper_account

pytestmark = pytest.mark.django_db

ALL_QUEUES = ("default", "execution", "reconciliation", "maintenance", "ml")


def workers_up(timeout: float):
    return (
        {"worker@host": {"ok": "pong"}},
        {"worker@host": [{"name": q} for q in ALL_QUEUES]},
    )


def workers_down(timeout: float):
    return None, None


@pytest.fixture
def healthy(monkeypatch):
    """Everything the startup runbook checks is fine (workers answered through a stub)."""
    monkeypatch.setattr(health, "celery_ping", workers_up)
    FeedStatus.objects.create(feed="replay", last_update=timezone.now())
    heartbeat_beat()


def run(command: str, *args: str) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command(command, *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


# --- healthcheck -------------------------------------------------------------------------


def test_healthcheck_when_everything_up_then_exit_0_and_one_line_per_check(healthy):
    code, out = run("healthcheck")
    assert code == 0, out
    lines = out.strip().splitlines()
    names = [line.split()[1] for line in lines[:-1]]
    assert names == ["database", "redis", "broker", "data_feed", "mode", "workers", "beat"]
    assert all(line.startswith("OK") for line in lines[:-1])
    assert lines[-1] == "overall: ok"


def test_healthcheck_when_mode_paused_then_exit_1_naming_the_mode(healthy):
    system_mode_set(mode=SystemMode.PAUSE, actor="test", source="cli", reason="t")
    code, out = run("healthcheck")
    assert code == 1
    assert "FAIL mode PAUSE: must be NORMAL or OBSERVATION" in " ".join(out.split())


def test_healthcheck_when_feed_stale_then_fails(healthy, settings):
    FeedStatus.objects.update(
        last_update=timezone.now() - timedelta(seconds=settings.DATA_FEED_STALE_SECONDS + 5)
    )
    code, out = run("healthcheck")
    assert code == 1
    assert "FAIL data_feed stale" in " ".join(out.split())


def test_healthcheck_when_no_worker_answers_then_fails(healthy, monkeypatch):
    monkeypatch.setattr(health, "celery_ping", workers_down)
    code, out = run("healthcheck")
    assert code == 1
    assert "no Celery worker answered" in out


def test_healthcheck_when_a_queue_has_no_worker_then_warns_but_exit_0(healthy, monkeypatch):
    monkeypatch.setattr(health, "celery_ping", lambda t: ({"w": {}}, {"w": [{"name": "default"}]}))
    code, out = run("healthcheck")
    assert code == 0
    assert "WARN workers" in out
    assert "execution" in out


def test_healthcheck_when_beat_silent_then_fails(healthy):
    from django.core.cache import cache

    from apps.ops.services.maintenance import HEARTBEAT_KEY

    cache.delete(HEARTBEAT_KEY)
    code, out = run("healthcheck")
    assert code == 1
    assert "FAIL beat" in out


def test_healthcheck_when_celery_broker_unreachable_then_fails_not_crashes(healthy, monkeypatch):
    def broken(timeout: float):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(health, "celery_ping", broken)
    code, out = run("healthcheck")
    assert code == 1
    assert "FAIL workers ConnectionRefusedError" in " ".join(out.split())


def test_celery_ping_when_no_worker_then_none_within_timeout(settings):
    started = time.monotonic()
    replies, _ = health.celery_ping(0.3)
    assert replies is None or isinstance(replies, dict)
    assert time.monotonic() - started < 5


METRICS_TOKEN = "metrics-token-for-tests-0123456789"  # noqa: S105


def test_health_ready_when_healthy_then_200_json(healthy, settings):
    settings.METRICS_BEARER_TOKEN = METRICS_TOKEN
    response = Client().get("/health/ready", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {
        "database",
        "redis",
        "broker",
        "data_feed",
        "mode",
        "workers",
        "beat",
    }


def test_health_ready_when_mode_kill_then_503(healthy, staff_user):
    kill_switch_engage(actor="test", source="cli", reason="t")
    client = Client()
    otp_login(client, staff_user)  # a verified staff user sees the checks too
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["mode"]["status"] == "fail"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {METRICS_TOKEN}"])
def test_health_ready_when_anonymous_or_wrong_token_then_status_only(
    healthy, settings, authorization
):
    settings.METRICS_BEARER_TOKEN = METRICS_TOKEN
    kill_switch_engage(actor="test", source="cli", reason="t")
    headers = {"Authorization": authorization} if authorization else {}

    response = Client().get("/health/ready", headers=headers)

    assert response.status_code == 503  # probes still see the verdict
    assert response.json() == {"status": "fail"}  # no DB name, broker, mode or workers


def test_health_ready_when_no_token_configured_and_anonymous_then_status_only(healthy, settings):
    settings.METRICS_BEARER_TOKEN = ""

    response = Client().get("/health/ready")

    assert response.json() == {"status": "ok"}


def test_readiness_page_when_verified_staff_then_lists_checks(healthy, staff_user):
    client = Client()
    otp_login(client, staff_user)
    response = client.get("/ops/readiness/")
    assert response.status_code == 200
    assert b'data-check="data_feed"' in response.content


def test_readiness_page_when_not_verified_then_no_access(healthy, staff_user):
    client = Client()
    otp_login(client, staff_user, verified=False)
    assert client.get("/ops/readiness/").status_code in (302, 403)
    assert Client().get("/ops/readiness/").status_code == 302


# --- pause / resume / kill ---------------------------------------------------------------


def test_pause_when_dry_run_then_says_what_would_change_and_changes_nothing():
    with pytest.raises(CommandError, match="dry run"):
        call_command("pause", "--reason", "maintenance")
    assert system_mode_get() is SystemMode.NORMAL


def test_pause_then_resume_when_executed_then_mode_changes_and_audited_as_cli_user():
    call_command("pause", "--reason", "maintenance", "--execute")
    assert system_mode_get() is SystemMode.PAUSE
    call_command("resume", "--reason", "done", "--execute")
    assert system_mode_get() is SystemMode.NORMAL
    actors = set(AuditEvent.objects.filter(action="mode.set").values_list("actor", flat=True))
    assert len(actors) == 1
    assert actors.pop().startswith("cli:")


def test_mode_commands_when_reason_missing_or_blank_then_refused():
    with pytest.raises(CommandError):
        call_command("pause")
    with pytest.raises(CommandError, match="reason is required"):
        call_command("pause", "--reason", "  ", "--execute")


def test_kill_when_executed_then_mode_kill():
    call_command("kill", "--reason", "drill", "--execute")
    assert system_mode_get() is SystemMode.KILL


# --- predeploy_check -----------------------------------------------------------------------


def good_backup() -> None:
    MaintenanceRun.objects.create(
        task="backup", started_at=timezone.now(), finished_at=timezone.now(), outcome="ok"
    )


def test_predeploy_when_all_good_then_exit_0(settings, monkeypatch):
    settings.CI_LAST_RESULT = "success"
    good_backup()
    monkeypatch.setattr(health, "nyse_open", lambda now: False)
    monkeypatch.setattr(
        "apps.trading.services.kill_switch.kill_switch_engage", lambda **kw: None, raising=False
    )
    code, out = run("predeploy_check")
    assert code == 0, out
    assert "OK   kill_switch" in out


def test_predeploy_when_ci_failed_no_backup_and_critical_alert_then_exit_1(settings, tmp_path):
    settings.CI_LAST_RESULT = ""
    settings.CI_RESULT_FILE = tmp_path / "ci"
    (tmp_path / "ci").write_text("failure abc123\n")
    Alert.objects.create(severity="critical", code="drawdown.kill", message="m")
    code, out = run("predeploy_check")
    out = " ".join(out.split())
    assert code == 1
    assert "FAIL ci" in out
    assert "failure abc123" in out
    assert "FAIL critical_alerts 1 critical alert(s) in 24 h: drawdown.kill" in out
    assert "FAIL backup no successful backup recorded" in out


def test_predeploy_when_ci_result_file_missing_then_says_how_to_provide_it(settings, tmp_path):
    settings.CI_LAST_RESULT = ""
    settings.CI_RESULT_FILE = tmp_path / "none"
    check = health.check_ci()
    assert check.status == "fail"
    assert "CI_LAST_RESULT=success" in check.detail


def test_markets_when_nyse_open_or_crypto_active_then_warn():
    assert health.nyse_open(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))  # 11:00 New York, Tue
    assert not health.nyse_open(datetime(2026, 3, 14, 15, 0, tzinfo=UTC))  # Saturday
    assert not health.nyse_open(datetime(2026, 3, 10, 21, 0, tzinfo=UTC))  # 17:00 New York
    instrument("BTC-USD")
    check = health.check_markets(datetime(2026, 3, 14, 15, 0, tzinfo=UTC))
    assert check.status == "warn"
    assert "crypto markets never close" in check.detail


# --- shutdown_graceful ---------------------------------------------------------------------


@pytest.fixture
def fake_engine(tmp_path, settings):
    """A process whose command line says run_engine, with its pid file, stopping on SIGTERM."""
    settings.ENGINE_PIDFILE = tmp_path / "run" / "engine.pid"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)", "run_engine"]
    )
    settings.ENGINE_PIDFILE.parent.mkdir(parents=True)
    settings.ENGINE_PIDFILE.write_text(f"{proc.pid}\n")
    yield proc
    proc.kill()
    proc.wait()


def test_shutdown_when_dry_run_then_nothing_changes(fake_engine):
    with pytest.raises(CommandError, match="dry run"):
        call_command("shutdown_graceful")
    assert system_mode_get() is SystemMode.NORMAL
    assert fake_engine.poll() is None


def test_shutdown_when_orders_still_working_then_pauses_reports_them_and_stops_engine(fake_engine):
    # Arrange
    account = paper_account()
    order = accepted_order(account, instrument("BTC-USD"), quantity="0.5")
    from io import StringIO

    out = StringIO()
    # Act
    with pytest.raises(CommandError) as raised:
        call_command("shutdown_graceful", "--execute", "--timeout", "0.5", stdout=out, verbosity=0)
    # Assert: everything done that could be, reported, and exit 1 (work is left)
    assert str(raised.value).startswith(
        "shutdown not complete: 1 order(s) still working. Trading is paused"
    )
    text = out.getvalue()
    assert system_mode_get() is SystemMode.PAUSE
    assert "still working (1):" in text
    assert order.client_order_id in text
    assert f"engine (pid {fake_engine.pid}) stopped" in text
    assert fake_engine.wait(timeout=5) is not None
    assert AuditEvent.objects.filter(action="ops.shutdown_graceful").exists()


def test_shutdown_when_engine_ignores_sigterm_then_report_not_complete(tmp_path, settings):
    from apps.ops.services.runbooks import shutdown_graceful

    settings.ENGINE_PIDFILE = tmp_path / "engine.pid"
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\nwhile True: time.sleep(0.1)",
            "run_engine",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout is not None
        assert stubborn.stdout.readline() == "ready\n"
        settings.ENGINE_PIDFILE.write_text(f"{stubborn.pid}\n")

        report = shutdown_graceful(actor="test", reason="t", timeout=0, engine_wait=0.5)

        assert not report.engine_stopped
        assert not report.complete
        assert "still running after 0.5 s" in report.engine
    finally:
        stubborn.kill()
        stubborn.wait()


def test_shutdown_when_no_engine_then_says_so(tmp_path, settings):
    settings.ENGINE_PIDFILE = tmp_path / "engine.pid"
    from io import StringIO

    out = StringIO()
    call_command("shutdown_graceful", "--execute", "--timeout", "0", stdout=out, verbosity=0)
    assert "no working orders left" in out.getvalue()
    assert "no running engine" in out.getvalue()


def test_engine_pid_when_pid_file_stale_or_other_process_then_none(tmp_path):
    path = tmp_path / "engine.pid"
    path.write_text("999999999\n")
    assert engine_pid(path) is None
    path.write_text(f"{subprocess.os.getpid()}\n")  # pytest: not run_engine
    assert engine_pid(path) is None


def test_engine_pidfile_when_block_ends_then_removed(tmp_path):
    path = tmp_path / "run" / "engine.pid"
    with engine_pidfile(path):
        assert path.read_text().strip() == str(subprocess.os.getpid())
    assert not path.exists()


# --- honest exit codes of the other runbook commands ----------------------------------------


def test_logs_rotate_when_log_dir_missing_then_exit_1_and_recorded_failed(tmp_path, settings):
    settings.LOG_DIR = str(tmp_path / "not-there")

    with pytest.raises(CommandError, match=r"LOG_DIR .*not-there is not a directory"):
        call_command("logs_rotate")

    run = MaintenanceRun.objects.get(task="logs_rotate")
    assert run.outcome == "failed"
    assert "not a directory" in run.detail["error"]


def test_logs_rotate_when_log_dir_exists_then_exit_0(tmp_path, settings):
    settings.LOG_DIR = str(tmp_path)

    code, out = run("logs_rotate")

    assert code == 0
    assert out.startswith("logs: {'deleted': [], 'rotated': []")
    assert MaintenanceRun.objects.get(task="logs_rotate").outcome == "ok"


def test_vacuum_when_postgresql_unreachable_then_clear_error_not_a_traceback(monkeypatch):
    import socket

    from apps.ops import backup as bk

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    real = bk.db_settings()
    monkeypatch.setattr(bk, "db_settings", lambda: {**real, "PORT": port})

    with pytest.raises(CommandError, match="vacuum failed .*Check that PostgreSQL is up"):
        call_command("vacuum")

    assert MaintenanceRun.objects.get(task="vacuum").outcome == "failed"
