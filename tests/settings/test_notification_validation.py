"""staging/prod refuse to start without the alerting settings, naming each and its fix."""

from __future__ import annotations

import pytest

from tradebot.settings.validation import NotificationConfig, notification_problems


def config(**overrides: object) -> NotificationConfig:
    values: dict[str, object] = {
        "environment": "prod",
        "telegram_bot_token": "123456:real-looking-token",
        "telegram_chat_id": "-1001234",
        "email_recipients": ["ops@example.com"],
        "smtp_host": "smtp.example.com",
        "sms_url": "https://sms.example.com/v1/sms",
        "sms_token": "sms-token",
        "sms_recipients": ["+34600000001"],
        "webhook_token": "x" * 10 + "Kq8-zT3_pL0aWv9yB2cN",
        "webhook_user": "",
        "webhook_password": "",
        "telegram_allowed_user_ids": frozenset({111222333}),
    }
    values.update(overrides)
    return NotificationConfig(**values)  # type: ignore[arg-type]


def test_notification_problems_when_all_set_then_none() -> None:
    assert notification_problems(config()) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"telegram_bot_token": ""}, "TELEGRAM_BOT_TOKEN is missing"),
        ({"telegram_chat_id": "@ops"}, "TELEGRAM_CHAT_ID must be the numeric id"),
        ({"telegram_allowed_user_ids": frozenset()}, "TELEGRAM_ALLOWED_USER_IDS is empty"),
        ({"email_recipients": []}, "ALERT_EMAIL is missing"),
        ({"smtp_host": ""}, "SMTP_SMARTHOST is missing"),
        ({"webhook_token": ""}, "ALERTMANAGER_WEBHOOK_TOKEN is missing"),
        ({"webhook_token": "changeme"}, "ALERTMANAGER_WEBHOOK_TOKEN is a default or weak value"),
        ({"sms_url": ""}, "NOTIFY_SMS_URL missing (critical alerts go by SMS)"),
        (
            {"sms_token": "", "sms_recipients": []},
            "NOTIFY_SMS_TOKEN, NOTIFY_SMS_RECIPIENTS missing",
        ),
        ({"sms_url": "http://sms.example.com/v1/sms"}, "NOTIFY_SMS_URL must be https://"),
    ],
)
def test_notification_problems_when_one_value_bad_then_named_with_the_fix(
    overrides: dict, expected: str
) -> None:
    found = notification_problems(config(**overrides))

    assert len(found) == 1
    assert found[0].startswith(expected)
    assert "config/.env.prod" in found[0]


def test_notification_problems_when_basic_auth_instead_of_token_then_accepted() -> None:
    found = notification_problems(
        config(webhook_token="", webhook_user="alertmanager", webhook_password="pw")
    )

    assert found == []


def test_notification_problems_when_staging_without_sms_then_accepted() -> None:
    found = notification_problems(
        config(environment="staging", sms_url="", sms_token="", sms_recipients=[])
    )

    assert found == []
