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
        from django_otp import user_has_device

        second_factor = (
            "then your authenticator app's code"
            if user_has_device(user)
            else "then scan the QR code shown with an authenticator app (first login only)"
        )
        self.stdout.write(
            f"login: http://127.0.0.1:8000/  user {username}  password {password}, {second_factor}"
        )
