"""Start-up validation of a deployed (staging or prod) configuration.

Pure function over plain values so that every refusal is unit tested; the
deployed settings module calls it and refuses to start on any problem.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# Values that are documented placeholders or well-known defaults.
DEFAULT_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "xxx", "password", "django-insecure", "replace-me"}
)
DEFAULT_DB_PASSWORDS = frozenset(
    {"", "postgres", "password", "changeme", "change-me", "secret", "tradebot", "admin", "xxx"}
)
MIN_SECRET_LENGTH = 50
MIN_SALT_LENGTH = 16
MIN_METRICS_TOKEN_LENGTH = 24


@dataclass(frozen=True)
class DeployedConfig:
    environment: str
    debug: bool
    secret_key: str
    database_url: str
    allowed_hosts: list[str]
    env_file: Path | None
    salt_key: str = ""
    # Set only where migrate runs (the migrate service), never for the app processes.
    database_owner_url: str = ""
    owner_password_file: str = ""
    metrics_token: str = ""


def problems(config: DeployedConfig) -> list[str]:
    """Every problem with a deployed configuration, each naming the fix."""
    found: list[str] = []
    where = str(config.env_file) if config.env_file else f"config/.env.{config.environment}"
    if config.debug:
        found.append(f"DEBUG is on in {config.environment}: set DJANGO_DEBUG=false in {where}")
    key = config.secret_key
    if not key:
        found.append(
            f"DJANGO_SECRET_KEY is missing: generate one with "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(64))'` and set it in {where}"
        )
    elif (
        key.lower() in DEFAULT_SECRETS
        or key.startswith("django-insecure")
        or len(key) < MIN_SECRET_LENGTH
        or len(set(key)) < 5
    ):
        found.append(
            f"DJANGO_SECRET_KEY is a default or weak value (need {MIN_SECRET_LENGTH}+ random "
            f"characters): generate one with "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(64))'` and set it in {where}"
        )
    salt = config.salt_key
    salt_hint = (
        "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` "
        f"and set SALT_KEY in {where}; keep it for good (the broker credentials are encrypted "
        "with keys derived from it and DJANGO_SECRET_KEY)"
    )
    if not salt:
        found.append(f"SALT_KEY is missing: {salt_hint}")
    elif (
        salt.lower() in DEFAULT_SECRETS
        or salt.startswith(("dev-only", "test-only"))
        or len(salt) < MIN_SALT_LENGTH
        or len(set(salt)) < 5
        or salt == key
    ):
        found.append(
            f"SALT_KEY is a default or weak value (need {MIN_SALT_LENGTH}+ random characters, "
            f"not the secret key): {salt_hint}"
        )
    if not config.database_url:
        found.append(f"DATABASE_URL is missing: set it in {where}")
    else:
        password = urlsplit(config.database_url).password or ""
        if password.lower() in DEFAULT_DB_PASSWORDS:
            found.append(
                "DATABASE_URL has no password or a default one: create a strong password for "
                f"the database user and put it in DATABASE_URL in {where}"
            )
    if config.database_url and config.database_owner_url:
        app_user = urlsplit(config.database_url).username or ""
        owner = urlsplit(config.database_owner_url)
        if app_user == (owner.username or ""):
            found.append(
                f"DATABASE_URL and DATABASE_OWNER_URL use the same role {app_user!r}: the "
                "application needs its own role without the owner's rights (e.g. tradebot_app), "
                f"set it in DATABASE_URL in {where} (docs/security.md)"
            )
        if (
            owner.password or ""
        ).lower() in DEFAULT_DB_PASSWORDS and not config.owner_password_file:
            found.append(
                "DATABASE_OWNER_URL has no password or a default one: give the owner role a "
                "strong password (or DATABASE_OWNER_PASSWORD_FILE)"
            )
    token = config.metrics_token
    if not token or token.lower() in DEFAULT_SECRETS or len(token) < MIN_METRICS_TOKEN_LENGTH:
        found.append(
            f"METRICS_BEARER_TOKEN is missing or weak (need {MIN_METRICS_TOKEN_LENGTH}+ random "
            "characters; /metrics shows equity, P&L and exposures): generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` into "
            "config/secrets/metrics-token (METRICS_BEARER_TOKEN_FILE, read by Prometheus too) "
            f"or set METRICS_BEARER_TOKEN in {where}"
        )
    if not config.allowed_hosts or "*" in config.allowed_hosts:
        found.append(
            f"DJANGO_ALLOWED_HOSTS must list the server's host names (not empty, not '*'): "
            f"set it in {where}"
        )
    if config.env_file is not None and config.env_file.exists():
        mode = stat.S_IMODE(config.env_file.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(
                f"{config.env_file} is readable by group or others (mode {mode:04o}): "
                f"run `chmod 600 {config.env_file}`"
            )
    return found


@dataclass(frozen=True)
class NotificationConfig:
    """The alerting settings of a deployed configuration (tradebot/settings/components/
    notifications.py): without them a critical alert reaches nobody."""

    environment: str
    telegram_bot_token: str
    telegram_chat_id: str
    email_recipients: list[str]
    smtp_host: str
    sms_url: str
    sms_token: str
    sms_recipients: list[str]
    webhook_token: str
    webhook_user: str
    webhook_password: str


MIN_WEBHOOK_TOKEN_LENGTH = 24


def notification_problems(config: NotificationConfig) -> list[str]:
    """Every problem with the alerting settings of staging/prod, each naming the fix.

    Both need Telegram, e-mail and the Alertmanager webhook credentials; prod also needs
    the SMS provider (critical alerts go by SMS, spec table 5.1), staging only when set.
    """
    found: list[str] = []
    where = f"config/.env.{config.environment}"
    if not config.telegram_bot_token or config.telegram_bot_token.lower() in DEFAULT_SECRETS:
        found.append(
            f"TELEGRAM_BOT_TOKEN is missing: create a bot with @BotFather, set it in {where}"
        )
    if not config.telegram_chat_id.lstrip("-").isdigit():
        found.append(
            f"TELEGRAM_CHAT_ID must be the numeric id of the operators' chat: set it in {where}"
        )
    if not config.email_recipients:
        found.append(
            f"ALERT_EMAIL is missing (error and critical alerts go by e-mail): set it in {where}"
        )
    if not config.smtp_host:
        found.append(f"SMTP_SMARTHOST is missing (host:port of the mail server): set it in {where}")
    token = config.webhook_token
    if token:
        if token.lower() in DEFAULT_SECRETS or len(token) < MIN_WEBHOOK_TOKEN_LENGTH:
            found.append(
                f"ALERTMANAGER_WEBHOOK_TOKEN is a default or weak value (need "
                f"{MIN_WEBHOOK_TOKEN_LENGTH}+ random characters): generate one with "
                f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'` and set it in "
                f"{where} (the same value renders into alertmanager.yml)"
            )
    elif not (config.webhook_user and config.webhook_password):
        found.append(
            "ALERTMANAGER_WEBHOOK_TOKEN is missing (Alertmanager authenticates to the app's "
            "webhooks with it): generate one with "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'` and set it in {where}"
        )
    sms_set = config.sms_url or config.sms_token or config.sms_recipients
    if config.environment == "prod" or sms_set:
        missing = [
            name
            for name, value in (
                ("NOTIFY_SMS_URL", config.sms_url),
                ("NOTIFY_SMS_TOKEN", config.sms_token),
                ("NOTIFY_SMS_RECIPIENTS", config.sms_recipients),
            )
            if not value
        ]
        if missing:
            found.append(
                f"{', '.join(missing)} missing (critical alerts go by SMS): set the SMS "
                f"provider's API URL, token and the phone numbers in {where}"
            )
        if config.sms_url and urlsplit(config.sms_url).scheme != "https":
            found.append(f"NOTIFY_SMS_URL must be https:// (it carries a token): fix it in {where}")
    return found
