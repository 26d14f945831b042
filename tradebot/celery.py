"""The Celery application: configured from Django settings (CELERY_ namespace)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from tradebot.env import setup_settings_module

setup_settings_module()

app = Celery("tradebot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def logging_from_django(**_: Any) -> None:
    """Workers and beat log as Django does (settings.LOGGING): JSON in staging and prod,
    secrets masked, one file per process in LOG_DIR. Without a receiver for this signal
    Celery replaces the root handlers with its own plain, unmasked console handler."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
