"""Panel fixtures: OTP-verified staff sessions (a confirmed TOTP device + django_otp's
session key, as django_otp.login leaves them), and a clock the session limits read."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD, otp_login, totp_device_for  # noqa: F401 - re-used by panel tests


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("operator", password=PASSWORD, is_staff=True)


@pytest.fixture
def verified_client(operator) -> Client:
    client = Client()
    otp_login(client, operator)
    return client


@pytest.fixture
def csrf_client(operator) -> Client:
    """Verified, and the CSRF check on (the test client skips it by default)."""
    client = Client(enforce_csrf_checks=True)
    otp_login(client, operator)
    return client


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """The clock of the session limits (apps.panel.auth.now_ts), moved by the test."""
    c = Clock(1_900_000_000.0)
    monkeypatch.setattr("apps.panel.auth.now_ts", c)
    return c
