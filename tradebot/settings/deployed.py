"""staging and prod share this module; they differ only by their env values.

Secrets have no defaults here, and the configuration is validated before
anything starts (tradebot/settings/validation.py).
"""

from django.core.exceptions import ImproperlyConfigured

from tradebot.env import env_bool, env_number
from tradebot.settings.validation import (
    DeployedConfig,
    NotificationConfig,
    notification_problems,
    problems,
)

from .base import *  # noqa: F403
from .base import (
    ALERTMANAGER_WEBHOOK_PASSWORD,
    ALERTMANAGER_WEBHOOK_TOKEN,
    ALERTMANAGER_WEBHOOK_USER,
    ALLOWED_HOSTS,
    DEBUG,
    EMAIL_HOST,
    ENV_FILE_LOADED,
    ENVIRONMENT,
    METRICS_BEARER_TOKEN,
    NOTIFY_EMAIL_RECIPIENTS,
    NOTIFY_SMS_RECIPIENTS,
    NOTIFY_SMS_TOKEN,
    NOTIFY_SMS_URL,
    SALT_KEY,
    SECRET_KEY,
    TELEGRAM_ALLOWED_USER_IDS,
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_CHAT_ID,
    env,
)

_problems = problems(
    DeployedConfig(
        environment=ENVIRONMENT.value,
        debug=DEBUG,
        secret_key=SECRET_KEY,
        database_url=env.str("DATABASE_URL", default=""),
        database_owner_url=env.str("DATABASE_OWNER_URL", default=""),
        owner_password_file=env.str("DATABASE_OWNER_PASSWORD_FILE", default=""),
        metrics_token=METRICS_BEARER_TOKEN,
        allowed_hosts=list(ALLOWED_HOSTS),
        env_file=ENV_FILE_LOADED,
        salt_key=SALT_KEY,
    )
) + notification_problems(
    NotificationConfig(
        environment=ENVIRONMENT.value,
        telegram_bot_token=TELEGRAM_BOT_TOKEN,
        telegram_chat_id=TELEGRAM_CHAT_ID,
        email_recipients=list(NOTIFY_EMAIL_RECIPIENTS),
        smtp_host=EMAIL_HOST,
        sms_url=NOTIFY_SMS_URL,
        sms_token=NOTIFY_SMS_TOKEN,
        sms_recipients=list(NOTIFY_SMS_RECIPIENTS),
        webhook_token=ALERTMANAGER_WEBHOOK_TOKEN,
        webhook_user=ALERTMANAGER_WEBHOOK_USER,
        webhook_password=ALERTMANAGER_WEBHOOK_PASSWORD,
        telegram_allowed_user_ids=TELEGRAM_ALLOWED_USER_IDS,
    )
)
# The names the stack itself calls the app by, from inside (never published): compose's
# healthcheck (127.0.0.1:8000), Prometheus' scrape and Alertmanager's webhooks
# (trading-core:8000), nginx's healthcheck through its port 80 (127.0.0.1: nginx passes the
# Host it got). DJANGO_ALLOWED_HOSTS stays the public name(s) only; these are added to it.
INTERNAL_HOSTS = env.list(
    "DJANGO_INTERNAL_HOSTS", default=["trading-core", "127.0.0.1", "localhost", "[::1]"]
)
if "*" in INTERNAL_HOSTS:
    _problems.append(
        "DJANGO_INTERNAL_HOSTS must list host names (the compose service name, loopback), not '*'"
    )
ALLOWED_HOSTS = [*ALLOWED_HOSTS, *(h for h in INTERNAL_HOSTS if h not in ALLOWED_HOSTS)]

if _problems:
    raise ImproperlyConfigured(f"refusing to start in {ENVIRONMENT.value}: " + "; ".join(_problems))

# nginx terminates TLS in front of the app (docker/nginx).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Called over plain HTTP on the internal network: compose/nginx healthchecks, Prometheus,
# Alertmanager's webhooks (a redirect to https://trading-core would fail).
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$", r"^hooks/alertmanager/"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_number("DJANGO_SECURE_HSTS_SECONDS", 31536000, int, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
