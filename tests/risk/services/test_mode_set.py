"""system_mode_set: the mode machine, refusals (audited, nothing changed), restart survival."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from apps.audit.models import AuditEvent
from apps.core.exceptions import ApplicationError
from apps.risk.domain.modes import SystemMode
from apps.risk.exceptions import ModeChangeRefused
from apps.risk.models import Incident, ModeChange
from apps.risk.services.incidents import incident_close, incident_update
from apps.risk.services.modes import system_mode_get, system_mode_set, system_state_get
from apps.trading.services.kill_switch import kill_switch_engage
from tests.integration.conftest import database_url

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user(username="viewer", password="x", is_staff=False)


def kill() -> Incident:
    report = kill_switch_engage(actor="user:ops", source="panel", reason="test kill")
    return Incident.objects.get(pk=report.incident_id)


def write_and_close(incident: Incident, user) -> None:  # noqa: ANN001
    incident_update(
        incident_id=incident.pk,
        what_happened="drawdown",
        cause="crash",
        action_taken="flattened",
        actor="user:ops",
    )
    incident_close(incident_id=incident.pk, actor="user:ops", user=user, otp_verified=True)


def snapshot() -> tuple[str, int]:
    return system_state_get().mode, ModeChange.objects.count()


def test_mode_set_records_change_audit_and_broadcast(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        state = system_mode_set(
            mode=SystemMode.PAUSE, actor="cli:root", source="cli", reason="maintenance"
        )

    assert state.mode == "pause"
    assert system_mode_get() is SystemMode.PAUSE
    change = ModeChange.objects.get()
    assert (change.from_mode, change.to_mode, change.actor, change.source, change.reason) == (
        "normal",
        "pause",
        "cli:root",
        "cli",
        "maintenance",
    )
    audit = AuditEvent.objects.get(action="mode.set")
    assert audit.data["from"] == "normal"
    assert audit.data["mode_change"] == change.pk
    assert len(callbacks) == 2  # the mode.changed broadcast and the notification, on commit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "turbo"}, "unknown mode 'turbo'"),
        ({"reason": "  "}, "a reason is required"),
        ({"source": "email"}, "unknown source 'email'"),
        ({"mode": SystemMode.NORMAL}, "already in normal"),
    ],
)
def test_bad_requests_are_refused_audited_and_change_nothing(kwargs: dict, message: str) -> None:
    before = snapshot()
    args = {"mode": "pause", "actor": "api:x", "source": "api", "reason": "why", **kwargs}

    with pytest.raises(ModeChangeRefused, match=message) as info:
        system_mode_set(**args)

    assert isinstance(info.value, ApplicationError)
    assert info.value.http_status == 400
    assert snapshot() == before
    refused = AuditEvent.objects.get(action="mode.refused")
    assert message.split("'")[0] in refused.data["error"]


def test_kill_is_always_allowed_and_opens_an_incident() -> None:
    system_mode_set(mode="observation", actor="t", source="cli", reason="r")

    kill_switch_engage(actor="telegram:42", source="telegram", reason="panic")

    assert system_mode_get() is SystemMode.KILL
    incident = Incident.objects.get()
    assert incident.status == "open"
    assert incident.mode_change == ModeChange.objects.filter(to_mode="kill").get()


def test_kill_asked_of_risk_mode_machine_refused_audited_nothing_changes() -> None:
    """Risk decides, trading acts: KILL is latched only by the kill switch."""
    with pytest.raises(ModeChangeRefused, match="kill switch"):
        system_mode_set(mode=SystemMode.KILL, actor="t", source="cli", reason="r")

    assert system_mode_get() is not SystemMode.KILL
    assert not Incident.objects.exists()
    assert AuditEvent.objects.filter(action="mode.refused").count() == 1


@pytest.mark.parametrize(
    ("case", "target", "staff", "otp", "close_incident", "message"),
    [
        ("no closed incident", "observation", True, True, False, "incident report"),
        ("no otp", "observation", True, False, True, "two-factor"),
        ("not staff", "observation", False, True, True, "only a staff user"),
        ("to normal", "normal", True, True, True, "only be left to observation"),
        ("to pause", "pause", True, True, True, "only be left to observation"),
    ],
)
def test_leaving_kill_refused_audited_and_nothing_changes(
    case: str,
    target: str,
    staff: bool,
    otp: bool,
    close_incident: bool,
    message: str,
    staff_user,
    plain_user,
) -> None:
    incident = kill()
    if close_incident:
        write_and_close(incident, staff_user)
    before = snapshot()
    refusals_before = AuditEvent.objects.filter(action="mode.refused").count()

    with pytest.raises(ModeChangeRefused, match=message):
        system_mode_set(
            mode=target,
            actor="user:x",
            source="panel",
            reason="resume",
            user=staff_user if staff else plain_user,
            otp_verified=otp,
        )

    assert snapshot() == before
    assert system_mode_get() is SystemMode.KILL
    refusal = AuditEvent.objects.filter(action="mode.refused").latest("id")
    assert AuditEvent.objects.filter(action="mode.refused").count() == refusals_before + 1
    assert refusal.data["from"] == "kill"
    assert refusal.data["target"] == target


def test_leaving_kill_refused_without_user() -> None:
    kill()
    with pytest.raises(ModeChangeRefused, match="staff"):
        system_mode_set(mode="observation", actor="cli:root", source="cli", reason="r")


def test_leaving_kill_with_everything_goes_to_observation(staff_user) -> None:
    incident = kill()
    write_and_close(incident, staff_user)

    state = system_mode_set(
        mode=SystemMode.OBSERVATION,
        actor="user:ops",
        source="panel",
        reason="incident closed",
        user=staff_user,
        otp_verified=True,
    )

    assert state.mode == "observation"
    audit = AuditEvent.objects.filter(action="mode.set").latest("id")
    assert audit.data["from"] == "kill"
    assert audit.data["otp_verified"] is True


def test_an_old_closed_incident_does_not_open_a_new_kill(staff_user) -> None:
    write_and_close(kill(), staff_user)
    system_mode_set(
        mode="observation",
        actor="u",
        source="panel",
        reason="r",
        user=staff_user,
        otp_verified=True,
    )
    kill()  # a second KILL: its own incident is open

    with pytest.raises(ModeChangeRefused, match="incident report"):
        system_mode_set(
            mode="observation",
            actor="u",
            source="panel",
            reason="r",
            user=staff_user,
            otp_verified=True,
        )


@pytest.mark.django_db(transaction=True)
def test_kill_survives_a_restart_read_by_another_process() -> None:
    # Arrange: KILL committed by this process.
    kill_switch_engage(actor="cli:root", source="cli", reason="restart test")
    for conn in connections.all():
        conn.close()

    # Act: a fresh interpreter (a restarted engine/worker) reads the mode.
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='tradebot.settings.test'; "
        "django.setup(); from apps.risk.services.modes import system_mode_get; "
        "print('MODE=' + system_mode_get().value)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    # Assert
    assert proc.returncode == 0, proc.stderr
    assert "MODE=kill" in proc.stdout
    assert system_mode_get() is SystemMode.KILL
