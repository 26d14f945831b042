"""Notifications (apps.notifications): Telegram, e-mail and SMS by severity (spec table 5.1),
the Alertmanager webhooks and the Telegram bot.

Routing: info -> recorded only; warning -> Telegram; error -> Telegram + e-mail;
critical -> Telegram + e-mail + SMS. A channel whose settings are empty is skipped (its
delivery is stored as "skipped", naming the variable to set). Every value is parsed
strictly: a bad one stops the start with the variable's name.
"""

import re

from django.core.exceptions import ImproperlyConfigured

from tradebot.env import env, env_bool, env_number

_DEPLOYED = env.str("ENVIRONMENT", default="dev").strip().lower() in ("staging", "prod")

# --- Telegram (alerts, checklists, and the bot: manage.py telegram_bot) -------------------
TELEGRAM_BOT_TOKEN = env.str("TELEGRAM_BOT_TOKEN", default="")
TELEGRAM_CHAT_ID = env.str("TELEGRAM_CHAT_ID", default="")
TELEGRAM_API_URL = env.str("TELEGRAM_API_URL", default="https://api.telegram.org").rstrip("/")
# The bot obeys only TELEGRAM_CHAT_ID and, when this is set, only these user ids
# (comma-separated numbers); anything else is ignored and audited.
_users = env.list("TELEGRAM_ALLOWED_USER_IDS", default=[])
try:
    TELEGRAM_ALLOWED_USER_IDS = frozenset(int(u) for u in _users if u.strip())
except ValueError:
    raise ImproperlyConfigured(
        f"TELEGRAM_ALLOWED_USER_IDS={','.join(_users)!r} must be comma-separated numeric "
        "Telegram user ids (e.g. 11111111,22222222)"
    ) from None
# /kill asks for "/kill CONFIRM" from the same chat and user within this many seconds.
TELEGRAM_KILL_CONFIRM_SECONDS = env_number("TELEGRAM_KILL_CONFIRM_SECONDS", 60, int, minimum=5)
# Long polling timeout of getUpdates (seconds).
TELEGRAM_POLL_TIMEOUT = env_number("TELEGRAM_POLL_TIMEOUT", 30, int, minimum=0)

# --- e-mail (Django mail; the same SMTP_* variables as Alertmanager's config) --------------
ALERT_EMAIL = env.str("ALERT_EMAIL", default="")
NOTIFY_EMAIL_RECIPIENTS = env.list(
    "NOTIFY_EMAIL_RECIPIENTS", default=[a for a in [ALERT_EMAIL] if a]
)
_smarthost = env.str("SMTP_SMARTHOST", default="").strip()
if _smarthost and not re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", _smarthost):
    raise ImproperlyConfigured(
        f"SMTP_SMARTHOST={_smarthost!r} must be host:port (e.g. smtp.example.com:587)"
    )
EMAIL_HOST, _, _port = _smarthost.partition(":") if _smarthost else ("", "", "25")
EMAIL_PORT = int(_port or 25)
EMAIL_HOST_USER = env.str("SMTP_USER", default="")
EMAIL_HOST_PASSWORD = env.str("SMTP_PASSWORD", default="")
# STARTTLS (port 587); SMTP_USE_SSL for implicit TLS (port 465) instead.
EMAIL_USE_SSL = env_bool("SMTP_USE_SSL", False)
EMAIL_USE_TLS = env_bool("SMTP_REQUIRE_TLS", not EMAIL_USE_SSL) and not EMAIL_USE_SSL
EMAIL_TIMEOUT = env_number("SMTP_TIMEOUT_SECONDS", 10, int, minimum=1)
DEFAULT_FROM_EMAIL = env.str("SMTP_FROM", default="tradebot@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- SMS: a provider's HTTP API (generic JSON POST with a bearer token) ---------------------
# POST NOTIFY_SMS_URL, Authorization: Bearer NOTIFY_SMS_TOKEN,
# body {"to": [recipients], "text": "...", "reference": "tradebot-delivery-<id>"};
# any 2xx is success. 401/403: bad credentials; 429, 5xx, network: retried; other 4xx: failed.
NOTIFY_SMS_URL = env.str("NOTIFY_SMS_URL", default="")
NOTIFY_SMS_TOKEN = env.str("NOTIFY_SMS_TOKEN", default="")
NOTIFY_SMS_RECIPIENTS = env.list("NOTIFY_SMS_RECIPIENTS", default=[])
NOTIFY_SMS_SENDER = env.str("NOTIFY_SMS_SENDER", default="Tradebot")
NOTIFY_SMS_MAX_CHARS = env_number("NOTIFY_SMS_MAX_CHARS", 480, int, minimum=70)
NOTIFY_HTTP_TIMEOUT_SECONDS = env_number("NOTIFY_HTTP_TIMEOUT_SECONDS", 10.0, float, minimum=1)

# --- delivery policy -------------------------------------------------------------------------
# The same dedup_key within this window is one notification (its count goes up).
NOTIFY_DEDUP_WINDOW_SECONDS = env_number("NOTIFY_DEDUP_WINDOW_SECONDS", 3600, int, minimum=0)
# Per channel, "<messages>/<seconds>" in Redis; a message over the limit is dropped and
# stored as "rate_limited".
NOTIFY_RATE_LIMITS = {
    "telegram": env.str("NOTIFY_RATE_TELEGRAM", default="20/60"),
    "email": env.str("NOTIFY_RATE_EMAIL", default="20/3600"),
    "sms": env.str("NOTIFY_RATE_SMS", default="10/3600"),
}
for _channel, _rate in NOTIFY_RATE_LIMITS.items():
    if not re.fullmatch(r"\d+/[1-9]\d*", _rate.strip()):
        raise ImproperlyConfigured(
            f"NOTIFY_RATE_{_channel.upper()}={_rate!r} must be <messages>/<seconds> (e.g. 20/60)"
        )
# Temporary failures (network, 5xx, 429) are retried with exponential backoff.
NOTIFY_MAX_RETRIES = env_number("NOTIFY_MAX_RETRIES", 5, int, minimum=0)
NOTIFY_RETRY_BACKOFF_SECONDS = env_number("NOTIFY_RETRY_BACKOFF_SECONDS", 10, int, minimum=1)
NOTIFY_RETRY_BACKOFF_MAX_SECONDS = env_number(
    "NOTIFY_RETRY_BACKOFF_MAX_SECONDS", 600, int, minimum=1
)
# A channel with bad credentials (Telegram 401, SMTP auth error, SMS 401/403) is reported
# once and not tried again until its settings change or this cool-down passes.
NOTIFY_CHANNEL_COOLDOWN_SECONDS = env_number(
    "NOTIFY_CHANNEL_COOLDOWN_SECONDS", 3600, int, minimum=60
)

# --- Alertmanager webhooks (/hooks/alertmanager/sms and /watchdog) ---------------------------
# Either a bearer token (Alertmanager: http_config.authorization) or HTTP basic.
ALERTMANAGER_WEBHOOK_TOKEN = env.str("ALERTMANAGER_WEBHOOK_TOKEN", default="")
ALERTMANAGER_WEBHOOK_USER = env.str("ALERTMANAGER_WEBHOOK_USER", default="")
ALERTMANAGER_WEBHOOK_PASSWORD = env.str("ALERTMANAGER_WEBHOOK_PASSWORD", default="")
# The Watchdog heartbeat older than this raises a critical alert (0: never checked, the
# default outside staging/prod where no Alertmanager runs).
ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS = env_number(
    "ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS", 600 if _DEPLOYED else 0, int, minimum=0
)
