"""Logging: plain lines in dev and test, JSON in staging and prod."""

from tradebot.env import env

_LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
_JSON = env.str("ENVIRONMENT", default="dev") in ("staging", "prod")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "apps.core.logging.JsonFormatter",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if _JSON else "plain"},
    },
    "root": {"handlers": ["console"], "level": _LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": _LOG_LEVEL},
    },
}
