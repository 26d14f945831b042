"""Shared fixtures: the real PostgreSQL and Redis of scripts/services.py (never SQLite, never in-memory)."""

from __future__ import annotations

import os

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

os.environ.setdefault("ENVIRONMENT", "test")

PASSWORD = "correct horse battery staple"  # noqa: S105 - test users only


def totp_device_for(user) -> TOTPDevice:
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="default", defaults={"confirmed": True}
    )
    return device


def otp_login(client: Client, user, *, verified: bool = True) -> TOTPDevice | None:
    """Log the client in as user; with verified, also as past the second factor."""
    client.force_login(user)
    if not verified:
        return None
    device = totp_device_for(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="ops", password="pw-for-tests-only", is_staff=True
    )


@pytest.fixture
def eager_celery():
    """Celery tasks run inline at .delay() (the real-worker path is tests/integration)."""
    from tradebot.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(scope="session", autouse=True)
def _app_roles_dropped_at_the_end():
    """Set up before the test database, torn down after it is dropped: the application
    roles that tests created (tests/dbroles.py) are dropped from the server."""
    yield
    from django.conf import settings

    from tests.dbroles import app_roles_drop_at_exit

    db = settings.DATABASES["default"]
    app_roles_drop_at_exit(
        {
            "host": db.get("HOST") or "127.0.0.1",
            "port": db.get("PORT") or 5432,
            "user": db.get("USER") or "postgres",
            "password": db.get("PASSWORD") or None,
        }
    )
