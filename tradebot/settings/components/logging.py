"""Logging: plain lines in dev and test, JSON in staging and prod."""

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from tradebot.env import env

_LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# LOG_FORMAT: json (the default in staging and prod: one JSON object per line) or plain.
LOG_FORMAT = env.str(
    "LOG_FORMAT",
    default="json" if env.str("ENVIRONMENT", default="dev") in ("staging", "prod") else "plain",
).lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not a log format: use json or plain")
_JSON = LOG_FORMAT == "json"
# Files: one per process in LOG_DIR, rotated at midnight UTC, kept LOG_RETENTION_DAYS
# (apps/ops/logging.py); unset = stdout only (the container runtime keeps it).
LOG_DIR = env.str("LOG_DIR", default="")
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=90)

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "apps.ops.logging.JsonFormatter",
        },
    },
    "filters": {"mask_secrets": {"()": "apps.ops.logging.SecretMaskingFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if _JSON else "plain",
            "filters": ["mask_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": _LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": _LOG_LEVEL},
    },
}
if LOG_DIR:
    LOGGING["handlers"]["file"] = {
        "()": "apps.ops.logging.DailyFileHandler",
        "directory": LOG_DIR,
        "backupCount": LOG_RETENTION_DAYS,
        "formatter": "json" if _JSON else "plain",
        "filters": ["mask_secrets"],
    }
    LOGGING["root"]["handlers"].append("file")
