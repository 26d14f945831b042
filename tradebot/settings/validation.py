"""Start-up validation of a deployed (staging or prod) configuration.

Pure function over plain values so that every refusal is unit tested; the
deployed settings module calls it and refuses to start on any problem.
"""

from __future__ import annotations

import math
import stat
import zlib
from collections import Counter
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
MIN_DB_PASSWORD_LENGTH = 16
# Words no generated secret contains: placeholders, product and service names, keyboard walks.
PLACEHOLDER_WORDS = (
    "change",
    "replace",
    "example",
    "placeholder",
    "insecure",
    "secret",
    "password",
    "passwd",
    "default",
    "dummy",
    "sample",
    "xxxx",
    "todo",
    "tradebot",
    "postgres",
    "admin",
    "qwerty",
    "123456",
    "letmein",
)


def entropy_bits(value: str) -> float:
    """An estimate of a secret's entropy: its length times the Shannon entropy of its
    characters (a generated token_urlsafe(32) has about 200 bits; 'Tradebot123' 36)."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return n * -sum(c / n * math.log2(c / n) for c in counts.values())


def secret_weakness(value: str, *, min_length: int, min_bits: float) -> str | None:
    """Why ``value`` is not a generated secret (None when it looks like one)."""
    lower = value.lower()
    word = next((w for w in PLACEHOLDER_WORDS if w in lower), None)
    if word is not None:
        return f"contains {word!r}, a placeholder or guessable word"
    if len(value) < min_length:
        return f"has {len(value)} characters (need {min_length}+)"
    bits = entropy_bits(value)
    if bits < min_bits:
        return f"has about {bits:.0f} bits of entropy (need {min_bits:.0f}+: random characters)"
    if len(value) >= 24 and len(zlib.compress(value.encode(), 9)) < 0.75 * len(value):
        return "repeats itself (a pattern, not random characters)"
    return None


def host_problem(host: str) -> str | None:
    """Why an ALLOWED_HOSTS entry lets in more than the server's own names (None if fine)."""
    if host == "*":
        return "'*' accepts any Host header"
    if host.startswith("."):
        labels = [part for part in host[1:].split(".") if part]
        if len(labels) < 2:
            return f"{host!r} accepts every host name under a top-level domain"
    return None


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
    elif weak := (
        "is a documented default"
        if key.lower() in DEFAULT_SECRETS or key.startswith("django-insecure")
        else secret_weakness(key, min_length=MIN_SECRET_LENGTH, min_bits=200)
    ):
        found.append(
            f"DJANGO_SECRET_KEY is a default or weak value: it {weak} (need {MIN_SECRET_LENGTH}+ random "
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
    elif weak := (
        "is a documented default"
        if salt.lower() in DEFAULT_SECRETS or salt.startswith(("dev-only", "test-only"))
        else "is the secret key"
        if salt == key
        else secret_weakness(salt, min_length=MIN_SALT_LENGTH, min_bits=64)
    ):
        found.append(
            f"SALT_KEY is a default or weak value: it {weak} (need {MIN_SALT_LENGTH}+ random characters, "
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
        elif weak := secret_weakness(password, min_length=MIN_DB_PASSWORD_LENGTH, min_bits=64):
            found.append(
                f"DATABASE_URL's password {weak}: generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`, set it for "
                f"the database role and in DATABASE_URL in {where}"
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
    if (
        not token
        or token.lower() in DEFAULT_SECRETS
        or secret_weakness(token, min_length=MIN_METRICS_TOKEN_LENGTH, min_bits=96)
    ):
        found.append(
            f"METRICS_BEARER_TOKEN is missing or weak (need {MIN_METRICS_TOKEN_LENGTH}+ random "
            "characters; /metrics shows equity, P&L and exposures): generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` into "
            "config/secrets/metrics-token (METRICS_BEARER_TOKEN_FILE, read by Prometheus too) "
            f"or set METRICS_BEARER_TOKEN in {where}"
        )
    if not config.allowed_hosts:
        found.append(
            f"DJANGO_ALLOWED_HOSTS must list the server's host names (not empty, not '*'): "
            f"set it in {where}"
        )
    for host in config.allowed_hosts:
        if reason := host_problem(host):
            found.append(
                f"DJANGO_ALLOWED_HOSTS must list the server's host names, but {reason}: list them "
                f"(e.g. tradebot.example.com) in {where}"
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
    telegram_allowed_user_ids: frozenset[int] = frozenset()


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
    if not config.telegram_allowed_user_ids:
        found.append(
            "TELEGRAM_ALLOWED_USER_IDS is empty, so any member of the operators' chat can "
            "pause, resume and kill: list the numeric Telegram user ids of the people allowed "
            f"to command the bot (comma-separated; Telegram's @userinfobot tells each theirs) in {where}"
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
