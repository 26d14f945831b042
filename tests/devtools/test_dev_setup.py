"""make run's dev_setup: the admin, its authenticator (issued, never self-enrolled), the paper account."""

from __future__ import annotations

import stat
from io import StringIO

import pytest
from django.core.management import call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db


def test_dev_setup_when_run_twice_then_one_authenticator_kept_and_its_uri_on_file(tmp_path) -> None:
    password_file = tmp_path / "dev-admin.txt"
    first, second = StringIO(), StringIO()

    call_command("dev_setup", "--password-file", str(password_file), stdout=first)
    key = TOTPDevice.objects.get(user__username="admin", confirmed=True).key
    call_command("dev_setup", "--password-file", str(password_file), "--qr", stdout=second)

    totp_file = tmp_path / "dev-admin-totp.txt"
    assert TOTPDevice.objects.get(user__username="admin").key == key  # not re-issued
    uri = totp_file.read_text().strip()
    assert uri.startswith("otpauth://totp/Tradebot")
    assert "secret=" in uri
    assert stat.S_IMODE(totp_file.stat().st_mode) == 0o600
    assert str(totp_file) in first.getvalue()
    assert "\u2588" in second.getvalue() or "#" in second.getvalue()  # the QR code's blocks
