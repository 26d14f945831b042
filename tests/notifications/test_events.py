"""What the app knows, notified after commit: mode changes and the kill switch."""

from __future__ import annotations

import pytest

from apps.notifications.models import Notification
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.services.kill_switch import kill_switch_engage

pytestmark = pytest.mark.django_db


def test_mode_change_when_paused_by_hand_then_warning_after_commit(
    no_channels, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        system_mode_set(mode="pause", actor="cli:ops", source="cli", reason="broker down")

    notification = Notification.objects.get(code="mode.pause")
    assert notification.severity == "warning"
    assert notification.title == "Mode NORMAL -> PAUSE"
    assert notification.body == "by cli:ops (cli): broker down"


def test_mode_change_when_paused_by_a_rule_then_error(
    no_channels, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        system_mode_set(mode="pause", actor="rule:daily_loss", source="rule", reason="-3.1 %")

    assert Notification.objects.get(code="mode.pause").severity == "error"


def test_mode_change_when_not_committed_then_nothing_notified(no_channels):
    # The test transaction never commits: on_commit callbacks do not run.
    system_mode_set(mode="pause", actor="cli:ops", source="cli", reason="x")

    assert not Notification.objects.exists()


def test_kill_switch_when_engaged_then_critical_kill_and_its_report(
    telegram, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        kill_switch_engage(actor="telegram:42", source="telegram", reason="panic")

    kill = Notification.objects.get(code="mode.kill")
    assert kill.severity == "critical"
    assert kill.body == "by telegram:42 (telegram): panic"
    assert set(kill.deliveries.values_list("channel", flat=True)) == {"telegram", "email", "sms"}
    report = Notification.objects.get(code="kill_switch.report")
    assert report.severity == "error"  # flat, no errors
    assert "all positions closed (flat)" in report.body


def test_mode_change_when_notification_fails_then_the_change_stands(
    no_channels, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.risk import messages

    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(messages, "notify", broken)

    with django_capture_on_commit_callbacks(execute=True):
        system_mode_set(mode="pause", actor="cli:ops", source="cli", reason="x")

    assert system_mode_get() is SystemMode.PAUSE
