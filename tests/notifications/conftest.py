"""Channels pointed at loopback fakes, Celery run eagerly in-process, clean rate counters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.sms import SMS_TOKEN, SmsState, sms_server
from tests.fakes.smtp import SMTP_PASSWORD, SMTP_USER, SmtpState, smtp_server
from tests.fakes.telegram import TOKEN, BotApiState, bot_api_server

CHAT_ID = "-100123"


def rate_counters_clear() -> None:
    """Forget the Redis rate counters (they outlive the rolled-back test transaction)."""
    from django_redis import get_redis_connection

    from apps.notifications.services.channel_state import rate_key_prefix

    client = get_redis_connection("default")
    for key in client.scan_iter(f"{rate_key_prefix()}*"):
        client.delete(key)


@pytest.fixture
def clean_rates() -> Iterator[None]:
    rate_counters_clear()
    yield
    rate_counters_clear()


@pytest.fixture
def no_channels(settings, clean_rates):
    """Every channel unconfigured (whatever the developer's environment holds)."""
    settings.TELEGRAM_BOT_TOKEN = ""
    settings.TELEGRAM_CHAT_ID = ""
    settings.NOTIFY_EMAIL_RECIPIENTS = []
    settings.NOTIFY_SMS_URL = ""
    settings.NOTIFY_SMS_TOKEN = ""
    settings.NOTIFY_SMS_RECIPIENTS = []
    return settings


@pytest.fixture
def telegram(no_channels) -> Iterator[BotApiState]:
    with bot_api_server() as (url, state):
        no_channels.TELEGRAM_BOT_TOKEN = TOKEN
        no_channels.TELEGRAM_CHAT_ID = CHAT_ID
        no_channels.TELEGRAM_API_URL = url
        yield state


@pytest.fixture
def smtp(no_channels) -> Iterator[SmtpState]:
    with smtp_server() as (port, state):
        no_channels.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        no_channels.EMAIL_HOST = "127.0.0.1"
        no_channels.EMAIL_PORT = port
        no_channels.EMAIL_HOST_USER = SMTP_USER
        no_channels.EMAIL_HOST_PASSWORD = SMTP_PASSWORD
        no_channels.EMAIL_USE_TLS = False
        no_channels.EMAIL_USE_SSL = False
        no_channels.DEFAULT_FROM_EMAIL = "tradebot@example.com"
        no_channels.NOTIFY_EMAIL_RECIPIENTS = ["ops@example.com"]
        yield state


@pytest.fixture
def sms(no_channels) -> Iterator[SmsState]:
    with sms_server() as (url, state):
        no_channels.NOTIFY_SMS_URL = url
        no_channels.NOTIFY_SMS_TOKEN = SMS_TOKEN
        no_channels.NOTIFY_SMS_RECIPIENTS = ["+34600000001", "+34600000002"]
        yield state


@pytest.fixture
def celery_eager(settings) -> Iterator[None]:
    """Tasks run in-process when queued (the worker's code path, without the broker)."""
    from tradebot.celery import app

    settings.NOTIFY_RETRY_BACKOFF_SECONDS = 1
    old = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = False  # a Retry re-runs the task (apply) as a worker would
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = old
