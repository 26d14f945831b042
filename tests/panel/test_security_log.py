"""Logins, failures, logouts and lockouts are audit events with address and browser, shown
on the panel's Security page; passwords and codes never are."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp

from apps.audit.models import AuditEvent
from tests.panel.conftest import PASSWORD, otp_login, totp_device_for

pytestmark = pytest.mark.django_db
AGENT = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


def step(client: Client, **data: str):
    return client.post(reverse("two_factor:login"), data, HTTP_USER_AGENT=AGENT)


def password_step(client: Client, password: str = PASSWORD):
    return step(
        client,
        **{
            "login_view-current_step": "auth",
            "auth-username": "operator",
            "auth-password": password,
        },
    )


def code_step(client: Client, code: str):
    return step(client, **{"login_view-current_step": "token", "token-otp_token": code})


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=f"auth.{action}").order_by("id"))


def test_login_when_password_and_code_then_one_login_event_with_address_and_browser(
    operator,
) -> None:
    device = totp_device_for(operator)
    client = Client()

    password_step(client)
    assert not events("login")  # a password alone is not a login
    done = code_step(client, f"{totp(device.bin_key):06d}")

    assert done.status_code == 302
    (event,) = events("login")
    assert (event.actor, event.target) == ("user:operator", "operator")
    assert event.data["ip"] == "127.0.0.1"
    assert event.data["user_agent"] == AGENT


def test_login_when_wrong_password_or_wrong_code_then_each_failure_recorded(operator) -> None:
    device = totp_device_for(operator)
    client = Client()

    password_step(client, "wrong-password")
    password_step(client)
    code_step(client, f"{(totp(device.bin_key) + 1) % 10**6:06d}")

    reasons = [(e.target, e.data["reason"]) for e in events("login_failed")]
    assert reasons == [("operator", "password"), ("operator", "authenticator code")]
    text = str([e.data for e in AuditEvent.objects.all()])
    assert "wrong-password" not in text
    assert PASSWORD not in text


def test_login_when_locked_out_then_lockout_recorded(operator) -> None:
    totp_device_for(operator)
    client = Client()
    for _ in range(5):
        password_step(client, "wrong")

    (event,) = events("lockout")
    assert event.target == "operator"
    assert event.data["ip"] == "127.0.0.1"


def test_logout_when_logged_in_then_recorded(operator) -> None:
    client = Client()
    otp_login(client, operator)

    client.post(reverse("panel:logout"), HTTP_USER_AGENT=AGENT)

    (event,) = events("logout")
    assert event.target == "operator"


def test_login_when_browser_string_is_hostile_then_stored_clean_and_cut(operator) -> None:
    client = Client()

    client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "auth", "auth-username": "operator", "auth-password": "x"},
        HTTP_USER_AGENT="evil\x00\x1b[31m\u202e" + "A" * 1000,
    )

    (event,) = events("login_failed")
    assert event.data["user_agent"].startswith("evil[31m")
    assert len(event.data["user_agent"]) == 256


def test_security_page_when_verified_staff_then_lists_events_else_redirects(operator) -> None:
    anonymous = Client().get(reverse("panel:security"))
    client = Client()
    password_step(Client(), "wrong")
    otp_login(client, operator)

    page = client.get(reverse("panel:security"))

    assert anonymous.status_code == 302
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-action="auth.login_failed"' in body
    assert "127.0.0.1" in body
