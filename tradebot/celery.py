"""The Celery application: configured from Django settings (CELERY_ namespace)."""

from __future__ import annotations

from celery import Celery

from tradebot.env import setup_settings_module

setup_settings_module()

app = Celery("tradebot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
