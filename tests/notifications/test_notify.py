"""notify(): table 5.1 routing, stored deliveries, deduplication, delivery through the
real clients (python-telegram-bot, Django's SMTP backend, httpx) to loopback fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.notifications.models import Alert, ChannelState, Delivery, Notification
from apps.notifications.services.delivery import deliveries_requeue, delivery_send
from apps.notifications.services.notifications import NotificationInvalid, notify
from tests.fakes.telegram import TOKEN

pytestmark = pytest.mark.django_db


def statuses(notification):
    return dict(notification.deliveries.values_list("channel", "status"))


def send(**overrides):
    values = {
        "severity": "warning",
        "code": "test.event",
        "title": "Something happened",
        "body": "details",
    }
    values.update(overrides)
    return notify(**values)


# --- routing and storage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "channels"),
    [
        ("info", set()),
        ("warning", {"telegram"}),
        ("error", {"telegram", "email"}),
        ("critical", {"telegram", "email", "sms"}),
    ],
)
def test_notify_when_severity_given_then_one_delivery_per_channel_of_table_5_1(
    telegram, smtp, sms, severity, channels
):
    notification = send(severity=severity)

    assert notification.severity == severity
    assert set(statuses(notification)) == channels
    assert set(statuses(notification).values()) <= {"pending"}


def test_notify_when_channels_not_configured_then_skipped_naming_the_settings(no_channels):
    notification = send(severity="critical")

    rows = {d.channel: d for d in notification.deliveries.all()}
    assert {c: d.status for c, d in rows.items()} == {
        "telegram": "skipped",
        "email": "skipped",
        "sms": "skipped",
    }
    assert "set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID" in rows["telegram"].last_error
    assert "set ALERT_EMAIL or NOTIFY_EMAIL_RECIPIENTS" in rows["email"].last_error
    assert "set NOTIFY_SMS_URL, NOTIFY_SMS_TOKEN" in rows["sms"].last_error


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"severity": "fatal"}, "unknown severity 'fatal'"),
        ({"code": " "}, "code is required"),
        ({"title": ""}, "title is required"),
        ({"code": "x" * 97}, "code is too long"),
    ],
)
def test_notify_when_input_bad_then_refused_and_nothing_stored(no_channels, overrides, message):
    with pytest.raises(NotificationInvalid, match=message):
        send(**overrides)

    assert not Notification.objects.exists()


def test_notify_when_same_dedup_key_in_window_then_one_notification_counted_twice(telegram):
    first = send(dedup_key="k1")
    second = send(dedup_key="k1", title="again")

    assert second.pk == first.pk
    assert second.occurrences == 2
    assert Notification.objects.count() == 1
    assert Delivery.objects.count() == 1


def test_notify_when_dedup_window_passed_then_a_new_notification(telegram, settings):
    first = send(dedup_key="k1")
    Notification.objects.filter(pk=first.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.NOTIFY_DEDUP_WINDOW_SECONDS + 1)
    )

    second = send(dedup_key="k1")

    assert second.pk != first.pk
    assert Notification.objects.count() == 2


def test_notify_when_committed_then_delivered_by_the_task_to_each_channel(
    telegram, smtp, sms, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notification = send(severity="critical", title="Drawdown 16%", body="KILL engaged")

    assert statuses(notification) == {"telegram": "sent", "email": "sent", "sms": "sent"}
    (message,) = telegram.wait_sent(1)
    assert message["chat_id"] in (-100123, "-100123")
    assert message["text"] == "[CRITICAL] Drawdown 16%\nKILL engaged"
    ((sender, rcpts, mail),) = smtp.wait_messages(1)
    assert rcpts == ["ops@example.com"]
    assert mail["Subject"] == "Tradebot [CRITICAL] Drawdown 16%"
    assert "KILL engaged" in mail.get_payload()
    (sms_body,) = sms.wait_sent(1)
    assert sms_body["to"] == ["+34600000001", "+34600000002"]
    assert sms_body["text"] == "[CRITICAL] Drawdown 16%: KILL engaged"
    delivery = notification.deliveries.get(channel="sms")
    assert delivery.provider_id == "sms-1"
    assert delivery.attempts == 1
    assert delivery.sent_at is not None


def test_notify_when_info_then_recorded_only(
    telegram, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notification = send(severity="info")

    assert Notification.objects.filter(pk=notification.pk).exists()
    assert callbacks == []
    assert telegram.sent == []


def test_notify_when_rolled_back_then_nothing_sent(telegram, celery_eager):
    from django.db import transaction

    def callers_work() -> None:
        with transaction.atomic():
            send()
            raise RuntimeError("the caller's work failed")

    with pytest.raises(RuntimeError):
        callers_work()

    assert not Notification.objects.exists()
    assert telegram.sent == []


# --- temporary failures, retries ------------------------------------------------------------


def test_delivery_when_provider_fails_twice_then_retried_and_sent(
    sms, celery_eager, django_capture_on_commit_callbacks
):
    sms.fail_status, sms.fail_times = 503, 2

    with django_capture_on_commit_callbacks(execute=True):
        notification = send(severity="critical")

    delivery = notification.deliveries.get(channel="sms")
    assert delivery.status == "sent"
    assert delivery.attempts == 3
    assert sms.requests == 3


def test_delivery_when_retries_exhausted_then_failed_with_the_last_error(
    sms, celery_eager, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFY_MAX_RETRIES = 2
    sms.fail_status = 500

    with django_capture_on_commit_callbacks(execute=True):
        notification = send(severity="critical")

    delivery = notification.deliveries.get(channel="sms")
    assert delivery.status == "failed"
    assert delivery.attempts == 3
    assert delivery.last_error.startswith("gave up after 3 attempts: the SMS provider answered 500")


def test_delivery_when_provider_unreachable_then_retrying_with_the_error(no_channels, settings):
    settings.NOTIFY_SMS_URL = "http://127.0.0.1:9/v1/sms"  # discard port: connection refused
    settings.NOTIFY_SMS_TOKEN = "t"
    settings.NOTIFY_SMS_RECIPIENTS = ["+34600000001"]
    notification = send(severity="critical")
    delivery = notification.deliveries.get(channel="sms")

    outcome = delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert outcome.retry
    assert delivery.status == "retrying"
    assert "the SMS provider did not answer: ConnectError" in delivery.last_error


def test_delivery_when_telegram_refuses_the_message_then_failed_not_retried(telegram):
    telegram.fail_status = 400
    delivery = send().deliveries.get()

    outcome = delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert not outcome.retry
    assert delivery.status == "failed"
    assert "chat not found" in delivery.last_error.lower()


def test_delivery_when_already_sent_then_not_sent_again(telegram):
    delivery = send().deliveries.get()
    delivery_send(delivery_id=delivery.pk)

    outcome = delivery_send(delivery_id=delivery.pk)

    assert outcome.status == "not_open"
    assert len(telegram.sent) == 1


def test_sweep_when_delivery_left_pending_then_handed_to_the_task(telegram, celery_eager):
    delivery = send().deliveries.get()  # on_commit never ran: the broker "was down"
    Delivery.objects.filter(pk=delivery.pk).update(updated_at=timezone.now() - timedelta(minutes=5))

    assert deliveries_requeue() == 1

    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert len(telegram.sent) == 1


# --- rate limits -----------------------------------------------------------------------------


def test_delivery_when_over_the_channel_rate_then_dropped_as_rate_limited(
    telegram, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.NOTIFY_RATE_LIMITS = {**settings.NOTIFY_RATE_LIMITS, "telegram": "2/60"}

    with django_capture_on_commit_callbacks(execute=True):
        notifications = [send(title=f"event {i}") for i in range(3)]

    assert [statuses(n)["telegram"] for n in notifications] == ["sent", "sent", "rate_limited"]
    assert len(telegram.sent) == 2
    limited = notifications[2].deliveries.get()
    assert "over the telegram rate limit 2/60 (NOTIFY_RATE_TELEGRAM)" in limited.last_error


# --- bad credentials -------------------------------------------------------------------------


def test_delivery_when_telegram_token_refused_then_channel_disabled_and_reported_once(
    telegram, settings
):
    settings.TELEGRAM_BOT_TOKEN = "999:wrong-token"
    first = send().deliveries.get()
    second = send(title="second").deliveries.get()

    delivery_send(delivery_id=first.pk)
    delivery_send(delivery_id=second.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "failed"
    assert "Telegram refused the bot token" in first.last_error
    assert second.status == "suppressed"
    assert "telegram is disabled until" in second.last_error
    assert telegram.unauthorized == 1  # the suppressed one never reached Telegram
    assert ChannelState.objects.get(channel="telegram").disabled_until > timezone.now()
    assert Alert.objects.filter(code="notify_telegram_credentials").count() == 1
    assert AuditEvent.objects.filter(action="notify.channel_disabled").count() == 1


def test_delivery_when_disabled_channel_settings_change_then_tried_again(telegram, settings):
    settings.TELEGRAM_BOT_TOKEN = "999:wrong-token"
    delivery_send(delivery_id=send().deliveries.get().pk)
    settings.TELEGRAM_BOT_TOKEN = TOKEN  # fixed
    delivery = send(title="after the fix").deliveries.get()

    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == "sent"
    assert Alert.objects.get(code="notify_telegram_credentials").resolved_at is not None


def test_delivery_when_cooldown_passed_and_still_refused_then_not_reported_again(
    telegram, settings
):
    settings.TELEGRAM_BOT_TOKEN = "999:wrong-token"
    delivery_send(delivery_id=send().deliveries.get().pk)
    ChannelState.objects.update(disabled_until=timezone.now() - timedelta(seconds=1))
    retry = send(title="after the cool-down").deliveries.get()

    delivery_send(delivery_id=retry.pk)

    retry.refresh_from_db()
    assert retry.status == "failed"  # tried (cool-down over) and refused again
    assert ChannelState.objects.get().disabled_until > timezone.now()
    assert Alert.objects.filter(code="notify_telegram_credentials").count() == 1
    assert AuditEvent.objects.filter(action="notify.channel_disabled").count() == 1


def test_delivery_when_smtp_login_refused_then_email_disabled_others_still_sent(
    telegram, smtp, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.EMAIL_HOST_PASSWORD = "wrong"

    with django_capture_on_commit_callbacks(execute=True):
        first = send(severity="error")
        second = send(severity="error", title="second")

    assert statuses(first) == {"telegram": "sent", "email": "failed"}
    assert statuses(second) == {"telegram": "sent", "email": "suppressed"}
    assert (
        "refused the login of 'tradebot': 535" in first.deliveries.get(channel="email").last_error
    )
    assert smtp.auth_failures == 1
    assert len(telegram.sent) == 2


def test_delivery_when_sms_token_refused_then_sms_disabled(
    sms, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.NOTIFY_SMS_TOKEN = "wrong"

    with django_capture_on_commit_callbacks(execute=True):
        notification = send(severity="critical")

    delivery = notification.deliveries.get(channel="sms")
    assert delivery.status == "failed"
    assert "the SMS provider refused the token (401)" in delivery.last_error
    assert ChannelState.objects.filter(channel="sms", disabled_until__gt=timezone.now()).exists()
