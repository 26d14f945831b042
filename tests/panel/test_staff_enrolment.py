"""Staff authenticators are issued on the server, printed once, and work for the real login."""

from __future__ import annotations

import re
from base64 import b32decode
from io import StringIO
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, "--no-qr", stdout=out)
    return out.getvalue()


def found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    assert match is not None, f"{pattern!r} not in:\n{text}"
    return match.group(1)


def printed(out: str) -> tuple[str, bytes, list[str]]:
    """(password or "", TOTP key, backup codes) as the command printed them."""
    password = re.search(r"^password: (\S+)$", out, re.M)
    uri = found(r"(otpauth://\S+)", out)
    parsed = urlparse(uri)
    assert parsed.netloc == "totp"
    query = parse_qs(parsed.query)
    assert query["issuer"] == ["Tradebot"]
    assert parsed.path.startswith("/Tradebot")
    key = b32decode(query["secret"][0] + "=" * (-len(query["secret"][0]) % 8))
    codes = found(r"backup codes.*\n  (.+)\n", out).split()
    return (password.group(1) if password else ""), key, codes


def login(client: Client, username: str, password: str, *, code: str | None = None, backup=None):
    client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "auth", "auth-username": username, "auth-password": password},
    )
    if backup is not None:
        return client.post(
            reverse("two_factor:login"),
            {"login_view-current_step": "backup", "backup-otp_token": backup},
        )
    return client.post(
        reverse("two_factor:login"), {"login_view-current_step": "token", "token-otp_token": code}
    )


def test_staff_create_when_run_then_password_authenticator_and_codes_log_in(client) -> None:
    out = run("staff_create", "alice")
    password, key, codes = printed(out)

    done = login(client, "alice", password, code=f"{totp(key):06d}")

    assert done.status_code == 302
    assert client.get(reverse("panel:overview")).status_code == 200
    user = get_user_model().objects.get(username="alice")
    assert user.is_staff
    assert not user.is_superuser
    assert len(codes) == 10
    assert "Shown once" in out
    event = AuditEvent.objects.get(action="auth.totp_enrolled", target="alice")
    assert event.actor.startswith("cli:")
    assert key.hex() not in str(event.data)
    assert codes[0] not in str(event.data)


def test_staff_create_when_backup_code_then_it_works_once(client) -> None:
    password, _, codes = printed(run("staff_create", "bob"))

    first = login(client, "bob", password, backup=codes[0])
    client.logout()
    again = login(Client(), "bob", password, backup=codes[0])

    assert first.status_code == 302
    assert again.status_code == 200  # the form again, with its error: used up
    assert StaticToken.objects.filter(device__user__username="bob").count() == 9


def test_staff_totp_reset_when_executed_then_the_old_authenticator_stops_working() -> None:
    password, old_key, _ = printed(run("staff_create", "carol"))

    dry = run("staff_totp_reset", "carol")
    assert "would issue" in dry
    assert TOTPDevice.objects.get(user__username="carol").bin_key == old_key
    _, new_key, _ = printed(run("staff_totp_reset", "carol", "--execute"))

    assert new_key != old_key
    assert TOTPDevice.objects.get(user__username="carol").bin_key == new_key
    denied = login(Client(), "carol", password, code=f"{totp(old_key):06d}")
    assert denied.status_code == 200  # back to the code form
    assert AuditEvent.objects.filter(action="auth.totp_enrolled", target="carol").count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("staff_create", "dave"), "exists: use manage.py staff_totp_reset dave"),
        (("staff_create", "bad name!"), "username"),
        (("staff_totp_reset", "nobody", "--execute"), "no user 'nobody'"),
    ],
)
def test_staff_commands_when_bad_input_then_clear_error_and_nothing_changed(args, message) -> None:
    get_user_model().objects.create_user("dave", password="x" * 20, is_staff=True)
    before = TOTPDevice.objects.count()

    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)

    assert TOTPDevice.objects.count() == before
    assert not AuditEvent.objects.filter(action__startswith="auth.").exists()
