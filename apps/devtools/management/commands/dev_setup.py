"""Create the dev admin, the paper account and its risk limits (idempotent)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from apps.risk.models import RiskLimit
from apps.trading.services.accounts import account_get_or_create


class Command(BaseCommand):
    help = "Dev only: create the admin user (password kept in var/dev-admin.txt), the paper account and limits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password-file", default=str(Path(settings.BASE_DIR) / "var" / "dev-admin.txt")
        )
        parser.add_argument(
            "--qr", action="store_true", help="print the admin's authenticator as a QR code"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        password_file = Path(options["password_file"])
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None or not password_file.exists():
            password = secrets.token_urlsafe(12)
            if user is None:
                user = user_model.objects.create_superuser(
                    username=username, email="", password=password
                )
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        account = account_get_or_create(name=settings.ENGINE_ACCOUNT)
        RiskLimit.objects.get_or_create(
            account=account,
            defaults={
                "max_order_notional": Decimal("5000"),
                "max_position_notional": Decimal("20000"),
            },
        )
        # A password never enrols an authenticator (apps/accounts/staff.py): the dev admin
        # gets one here, its otpauth URI kept beside the password (dev only).
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from apps.accounts.staff import staff_totp_enrol

        totp_file = password_file.with_name(password_file.stem + "-totp.txt")
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None or not totp_file.exists():
            uri = staff_totp_enrol(user=user, actor="dev_setup").otpauth_uri
            totp_file.write_text(uri + "\n")
            totp_file.chmod(0o600)
        if options["qr"]:
            import qrcode

            code = qrcode.QRCode(border=2)
            code.add_data(totp_file.read_text().strip())
            code.print_ascii(out=self.stdout, invert=True)
        self.stdout.write(
            f"login: http://127.0.0.1:8000/  user {username}  password {password}, then the code "
            f"of the authenticator in {totp_file} (QR: .venv/bin/python manage.py dev_setup --qr)"
        )
