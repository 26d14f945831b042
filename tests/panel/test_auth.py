"""Who gets in: password + TOTP, lockout, CSRF, session limits, on every panel URL."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import get_resolver, reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.panel.auth import SESSION_LAST_SEEN_KEY, SESSION_STARTED_KEY
from tests.panel.conftest import PASSWORD, otp_login, totp_device_for

pytestmark = pytest.mark.django_db

IDLE = 30 * 60
ABSOLUTE = 12 * 3600
CONTENT_MARKERS = (
    "overview-snapshot",
    "kill-form",
    "limits-form",
    "incidents",
    '"limits"',
    "plan-form",
)


def _panel_urls() -> list[tuple[str, str]]:
    """Every URL of the panel app (pages, controls, /api/) and the admin, with its method."""
    urls: list[tuple[str, str]] = []
    panel = get_resolver().namespace_dict["panel"][1]
    for name in sorted(k for k in panel.reverse_dict if isinstance(k, str)):
        if name == "logout":
            continue
        kwargs = {"incident_id": 1} if "incident" in name and name != "incidents" else {}
        if name in {"plan_edit", "plan_active", "api_plan"}:
            kwargs = {"plan_id": 1}
        url = reverse(f"panel:{name}", kwargs=kwargs)
        post_only = name in {
            "mode_set",
            "kill_switch",
            "limits_set",
            "incident_update",
            "incident_close",
            "api_mode",
            "api_kill",
            "api_limits",
            "plan_active",
        }
        urls.append((url, "post" if post_only else "get"))
    urls += [
        ("/admin/", "get"),
        ("/admin/audit/decisionlog/", "get"),
        ("/admin/risk/incident/", "get"),
        ("/admin/engine/tradingplan/", "get"),
    ]
    return urls


PANEL_URLS = _panel_urls()


def _assert_nothing_given(response) -> None:
    assert response.status_code in (302, 401, 403, 404), response.status_code
    body = response.content.decode(errors="replace")
    for marker in CONTENT_MARKERS:
        assert marker not in body
    if response.status_code == 302:
        assert response.url.startswith(
            ("/account/login/", "/account/enrolment-required/", "/admin/login/")
        )
    if response.status_code == 401:
        assert "error" in response.json()


def test_panel_urls_cover_pages_controls_and_api():
    urls = {u for u, _ in PANEL_URLS}
    for expected in (
        "/",
        "/risk/",
        "/incidents/",
        "/api/mode",
        "/api/kill",
        "/api/risk",
        "/api/limits",
    ):
        assert expected in urls


@pytest.mark.parametrize(("url", "method"), PANEL_URLS)
def test_every_url_when_anonymous_then_gives_nothing(client, url, method):
    # Act
    response = getattr(client, method)(url, data={"mode": "pause", "reason": "x"})

    # Assert
    _assert_nothing_given(response)


@pytest.mark.parametrize(("url", "method"), PANEL_URLS)
def test_every_url_when_password_only_then_gives_nothing(client, operator, url, method):
    # Arrange: logged in, device enrolled, but the second factor not given in this session.
    totp_device_for(operator)
    otp_login(client, operator, verified=False)

    # Act
    response = getattr(client, method)(url, data={"mode": "pause", "reason": "x"})

    # Assert
    _assert_nothing_given(response)


@pytest.mark.parametrize(("url", "method"), PANEL_URLS)
def test_every_url_when_verified_but_not_staff_then_gives_nothing(
    client, django_user_model, url, method
):
    # Arrange
    viewer = django_user_model.objects.create_user("viewer", password=PASSWORD)
    otp_login(client, viewer)

    # Act
    response = getattr(client, method)(url, data={"mode": "pause", "reason": "x"})

    # Assert
    _assert_nothing_given(response)


def test_admin_login_when_requested_then_sends_to_the_two_factor_login(client):
    # Act
    response = client.get("/admin/login/?next=/admin/")

    # Assert: the admin's own password-only form is never offered.
    assert response.status_code == 302
    assert response.url.startswith(reverse("two_factor:login"))


def test_admin_when_verified_staff_then_opens(client, admin_user):
    # Arrange
    otp_login(client, admin_user)

    # Act
    response = client.get("/admin/")

    # Assert
    assert response.status_code == 200


def test_overview_when_password_only_and_no_device_then_told_who_issues_one(client, operator):
    # Arrange
    otp_login(client, operator, verified=False)

    # Act
    response = client.get(reverse("panel:overview"))
    page = client.get(response.url)

    # Assert
    assert response.status_code == 302
    assert response.url.startswith(reverse("enrolment_required"))
    assert page.status_code == 403
    assert "manage.py staff_totp_reset operator" in page.content.decode()


def _login_steps(client: Client, username: str, password: str):
    return client.post(
        reverse("two_factor:login"),
        {
            "login_view-current_step": "auth",
            "auth-username": username,
            "auth-password": password,
        },
    )


def test_login_when_password_and_totp_code_then_verified_and_overview_renders(client, operator):
    # Arrange
    device = totp_device_for(operator)

    # Act: step 1, password; step 2, the code of the device's key now.
    first = _login_steps(client, "operator", PASSWORD)
    second = client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "token", "token-otp_token": f"{totp(device.bin_key):06d}"},
    )

    # Assert
    assert first.status_code == 200
    assert 'name="token-otp_token"' in first.content.decode()
    assert second.status_code == 302
    response = client.get(reverse("panel:overview"))
    assert response.status_code == 200
    assert "overview-snapshot" in response.content.decode()


def test_login_when_wrong_totp_code_then_not_logged_in(client, operator):
    # Arrange
    device = totp_device_for(operator)
    _login_steps(client, "operator", PASSWORD)

    # Act
    response = client.post(
        reverse("two_factor:login"),
        {
            "login_view-current_step": "token",
            "token-otp_token": f"{(totp(device.bin_key) + 1) % 10**6:06d}",
        },
    )

    # Assert
    assert response.status_code == 200
    assert client.get(reverse("panel:overview")).status_code == 302


def test_login_when_five_wrong_passwords_then_account_locked_even_with_the_right_one(
    client, operator
):
    # Arrange
    totp_device_for(operator)
    for _ in range(4):
        assert _login_steps(client, "operator", "wrong").status_code == 200

    # Act
    fifth = _login_steps(client, "operator", "wrong")
    sixth = _login_steps(client, "operator", PASSWORD)

    # Assert
    assert fifth.status_code == 429
    assert sixth.status_code == 429
    assert "Account locked" in sixth.content.decode()
    assert 'name="token-otp_token"' not in sixth.content.decode()


def test_login_when_four_wrong_passwords_then_still_allowed(client, operator):
    # Arrange
    totp_device_for(operator)
    for _ in range(4):
        _login_steps(client, "operator", "wrong")

    # Act
    response = _login_steps(client, "operator", PASSWORD)

    # Assert: on to the code step
    assert response.status_code == 200
    assert 'name="token-otp_token"' in response.content.decode()


def test_enrolment_when_password_only_then_the_setup_wizard_is_closed_and_no_device_added(
    client, operator
):
    # Arrange: password-only login of a user with no device yet (an attacker who has the
    # password would enrol their own authenticator here).
    otp_login(client, operator, verified=False)
    setup = reverse("two_factor:setup")

    # Act
    page = client.get(setup)
    welcome = client.post(setup, {"setup_view-current_step": "welcome"})
    generator = client.post(
        setup, {"setup_view-current_step": "generator", "generator-token": "123456"}
    )

    # Assert
    assert (page.status_code, welcome.status_code, generator.status_code) == (403, 403, 403)
    assert "staff_totp_reset" in page.content.decode()
    assert "QR Code" not in page.content.decode()
    assert not TOTPDevice.objects.filter(user=operator).exists()
    assert client.get(reverse("panel:overview")).status_code == 302


def test_enrolment_when_verified_then_the_setup_wizard_stays_open(client, operator):
    otp_login(client, operator)

    response = client.get(reverse("two_factor:setup"))

    assert response.status_code in (200, 302)  # its own page, or "already set up"
    assert "staff_totp_reset" not in response.content.decode()


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/controls/mode/", {"mode": "pause", "reason": "csrf test"}),
        ("/controls/kill/", {"reason": "csrf test", "confirm": "on"}),
        ("/controls/limits/", {"account_id": "1", "max_order_notional": "1"}),
        ("/incidents/1/close/", {}),
    ],
)
def test_control_post_when_no_csrf_token_then_403_and_nothing_changed(csrf_client, url, data):
    from apps.risk.services.modes import system_mode_get

    # Arrange
    before = system_mode_get()

    # Act
    response = csrf_client.post(url, data)

    # Assert
    assert response.status_code == 403
    assert system_mode_get() == before


@pytest.mark.parametrize("url", ["/api/mode", "/api/kill", "/api/limits"])
def test_api_post_when_no_csrf_token_then_403_json_and_nothing_changed(csrf_client, url):
    from apps.risk.services.modes import system_mode_get

    # Arrange
    before = system_mode_get()

    # Act
    response = csrf_client.post(
        url, {"mode": "pause", "reason": "csrf", "confirm": True}, content_type="application/json"
    )

    # Assert
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert system_mode_get() == before


def test_api_post_when_csrf_token_sent_then_passes_the_check(csrf_client):
    # Arrange: the cookie comes with any page that renders a form.
    csrf_client.get(reverse("panel:overview"))
    token = csrf_client.cookies["csrftoken"].value

    # Act: a bad body, so nothing changes: only the CSRF check is under test.
    response = csrf_client.post(
        "/api/mode", b"{not json", content_type="application/json", HTTP_X_CSRFTOKEN=token
    )

    # Assert
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]


# ----------------------------------------------------------------- session limits


def test_session_when_idle_29_minutes_then_still_in(verified_client, clock):
    # Arrange
    assert verified_client.get("/").status_code == 200

    # Act
    clock.advance(IDLE - 60)
    response = verified_client.get("/")

    # Assert
    assert response.status_code == 200


def test_session_when_idle_30_minutes_then_logged_out(verified_client, clock):
    # Arrange
    assert verified_client.get("/").status_code == 200

    # Act
    clock.advance(IDLE)
    response = verified_client.get("/")

    # Assert
    assert response.status_code == 302
    assert response.url.startswith(reverse("two_factor:login"))
    # and it stays logged out when the clock is fine again
    assert verified_client.get("/").status_code == 302


def test_session_when_active_but_12_hours_old_then_logged_out(verified_client, clock):
    # Arrange: a request every 20 minutes (never idle) for just under 12 h.
    assert verified_client.get("/api/risk").status_code == 200
    for _ in range(ABSOLUTE // (20 * 60) - 1):
        clock.advance(20 * 60)
        assert verified_client.get("/api/risk").status_code == 200
    assert clock.now - 1_900_000_000.0 < ABSOLUTE

    # Act
    clock.advance(20 * 60)
    response = verified_client.get("/api/risk")

    # Assert
    assert response.status_code == 401


def test_session_when_logged_in_then_cookie_and_store_expire_at_the_absolute_limit(
    verified_client, clock
):
    # Act
    verified_client.get("/")
    clock.advance(600)
    verified_client.get("/")

    # Assert: the expiry is a fixed date (not sliding with activity).
    session = verified_client.session
    assert session[SESSION_STARTED_KEY] == 1_900_000_000.0
    assert session[SESSION_LAST_SEEN_KEY] == 1_900_000_600.0
    assert session.get_expiry_date().timestamp() == pytest.approx(1_900_000_000.0 + ABSOLUTE)
