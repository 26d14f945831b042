"""/hooks/alertmanager/sms and /watchdog: authentication, validation, forwarding, the
Watchdog metric and the staleness check."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.notifications.models import Alert, Notification, WatchdogHeartbeat
from apps.notifications.services.watchdog import watchdog_check
from tests.notifications.domain.test_alertmanager_payload import payload

pytestmark = pytest.mark.django_db

HOOK_TOKEN = "hook-token-0123456789abcdef"  # noqa: S105 - test only
SMS_URL = "/hooks/alertmanager/sms"
WATCHDOG_URL = "/hooks/alertmanager/watchdog"


@pytest.fixture
def hook_auth(settings):
    settings.ALERTMANAGER_WEBHOOK_TOKEN = HOOK_TOKEN
    settings.ALERTMANAGER_WEBHOOK_USER = "alertmanager"
    settings.ALERTMANAGER_WEBHOOK_PASSWORD = "basic-pass-for-tests"
    return settings


def post(url, body, *, auth=f"Bearer {HOOK_TOKEN}", raw=False):
    data = body if raw else json.dumps(body)
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return Client().post(url, data=data, content_type="application/json", **headers)


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "error"),
    [
        (None, "authentication required"),
        ("Bearer nope", "bad credentials"),
        ("Basic " + base64.b64encode(b"alertmanager:wrong").decode(), "bad credentials"),
        ("Basic %%%", "malformed basic credentials"),
    ],
)
def test_sms_hook_when_not_authenticated_then_401_and_nothing_stored(hook_auth, sms, auth, error):
    response = post(SMS_URL, payload(), auth=auth)

    assert response.status_code == 401
    assert error in response.json()["error"]
    assert not Notification.objects.exists()


def test_sms_hook_when_auth_not_configured_then_503_naming_the_setting(settings, sms):
    settings.ALERTMANAGER_WEBHOOK_TOKEN = ""
    settings.ALERTMANAGER_WEBHOOK_USER = ""

    response = post(SMS_URL, payload())

    assert response.status_code == 503
    assert "set ALERTMANAGER_WEBHOOK_TOKEN" in response.json()["error"]


def test_sms_hook_when_basic_auth_right_then_accepted(hook_auth, sms):
    auth = "Basic " + base64.b64encode(b"alertmanager:basic-pass-for-tests").decode()

    assert post(SMS_URL, payload(), auth=auth).status_code == 200


def test_sms_hook_when_get_then_405(hook_auth):
    assert Client().get(SMS_URL).status_code == 405


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "raw", "error", "field"),
    [
        ("{not json", True, "the body is not JSON", ""),
        ("", True, "the body is not JSON", ""),
        ({"version": "3"}, False, "version must be '4'", "version"),
        (payload(alerts=[]), False, "alerts must be a non-empty list", "alerts"),
    ],
)
def test_sms_hook_when_payload_malformed_then_400_with_a_clear_error(
    hook_auth, sms, caplog, body, raw, error, field
):
    response = post(SMS_URL, body, raw=raw)

    assert response.status_code == 400
    assert error in response.json()["error"]
    assert response.json()["field"] == field
    assert not Notification.objects.exists()
    assert any("bad payload" in r.getMessage() for r in caplog.records)


# --- forwarding ------------------------------------------------------------------------------


def test_sms_hook_when_firing_then_one_sms_notification_per_alert_deduplicated_by_fingerprint(
    hook_auth, sms
):
    first = post(SMS_URL, payload())
    again = post(SMS_URL, payload())  # Alertmanager's repeat_interval

    assert first.json() == {"ok": True, "forwarded": 1, "deduplicated": 0, "resolved_ignored": 0}
    assert again.json()["deduplicated"] == 1
    notification = Notification.objects.get()
    assert notification.code == "alertmanager.CriticalDrawdown"
    assert notification.severity == "critical"
    assert notification.title == "CRITICAL: Drawdown > 15%"
    assert notification.occurrences == 2
    assert list(notification.deliveries.values_list("channel", "status")) == [("sms", "pending")]


def test_sms_hook_when_resolved_then_nothing_sent(hook_auth, sms):
    body = payload(status="resolved")
    body["alerts"][0]["status"] = "resolved"

    assert post(SMS_URL, body).json()["resolved_ignored"] == 1
    assert not Notification.objects.exists()


def test_sms_hook_when_committed_then_the_sms_reaches_the_provider(
    hook_auth, sms, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(SMS_URL, payload())

    (message,) = sms.wait_sent(1)
    assert message["text"] == "[CRITICAL] CRITICAL: Drawdown > 15%"
    assert message["to"] == ["+34600000001", "+34600000002"]


# --- the Watchdog ----------------------------------------------------------------------------


def watchdog_payload():
    body = payload(receiver="watchdog")
    body["alerts"][0]["labels"] = {"alertname": "Watchdog", "severity": "info"}
    return body


def test_watchdog_hook_when_posted_then_heartbeat_recorded_and_on_metrics(hook_auth):
    before = timezone.now()

    response = post(WATCHDOG_URL, watchdog_payload())

    assert response.status_code == 200
    beat = WatchdogHeartbeat.objects.get()
    assert beat.last_seen_at >= before
    assert beat.receiver == "watchdog"
    assert beat.beats == 1
    metrics = Client().get("/metrics").content.decode()
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith("alertmanager_watchdog_last_seen_timestamp ")
    )
    assert abs(float(line.split()[1]) - beat.last_seen_at.timestamp()) < 0.001


def test_watchdog_hook_when_malformed_then_400_and_no_heartbeat(hook_auth):
    response = post(WATCHDOG_URL, {"version": "4"})

    assert response.status_code == 400
    assert not WatchdogHeartbeat.objects.exclude(last_seen_at=None).exists()


def test_watchdog_check_when_heartbeat_older_than_max_age_then_critical_alert_and_notification(
    settings, no_channels
):
    settings.ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS = 600
    WatchdogHeartbeat.objects.create(pk=1, last_seen_at=timezone.now() - timedelta(minutes=11))

    age = watchdog_check()
    watchdog_check()  # a minute later: still one alert, one notification

    assert age > 600
    alert = Alert.objects.get(code="alertmanager_watchdog_stale")
    assert alert.severity == "critical"
    notification = Notification.objects.get(code="alertmanager.watchdog_stale")
    assert notification.severity == "critical"
    assert notification.occurrences == 2
    assert set(notification.deliveries.values_list("channel", flat=True)) == {
        "telegram",
        "email",
        "sms",
    }


def test_watchdog_check_when_heartbeat_arrives_again_then_alert_resolved(settings, hook_auth):
    settings.ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS = 600
    WatchdogHeartbeat.objects.create(pk=1, last_seen_at=timezone.now() - timedelta(hours=1))
    watchdog_check()

    post(WATCHDOG_URL, watchdog_payload())

    assert watchdog_check() < 600
    assert Alert.objects.get(code="alertmanager_watchdog_stale").resolved_at is not None


def test_watchdog_check_when_never_seen_then_counted_from_the_first_check(settings):
    settings.ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS = 600

    assert watchdog_check() < 5
    assert watchdog_check(now=timezone.now() + timedelta(minutes=11)) > 600
    assert "never seen" in Alert.objects.get(code="alertmanager_watchdog_stale").message


def test_watchdog_check_when_disabled_then_nothing(settings):
    settings.ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS = 0

    assert watchdog_check(now=timezone.now() + timedelta(days=1)) is None
    assert not Alert.objects.exists()
