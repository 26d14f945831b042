"""Issue a new authenticator and backup codes to a staff account (lost phone, first use)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.staff import staff_totp_enrol
from apps.core.cli import cli_actor

from ._enrolment import enrolment_print


class Command(BaseCommand):
    help = (
        "Give a staff account a NEW TOTP authenticator and 10 new backup codes, printed ONCE "
        "with a QR code; its previous authenticator and codes stop working at once. Dry run "
        "unless --execute. Audited as cli:<os user>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--execute", action="store_true", help="act; without it, a dry run")
        parser.add_argument("--no-qr", action="store_true", help="print the URI only")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user = user_model._default_manager.filter(
            **{user_model.USERNAME_FIELD: options["username"]}
        ).first()
        if user is None:
            raise CommandError(
                f"no user {options['username']!r}: create one with manage.py staff_create"
            )
        if not user.is_staff:
            raise CommandError(f"{options['username']!r} is not staff: the panel is staff only")
        if not options["execute"]:
            self.stdout.write(
                f"would issue a new authenticator and backup codes to {user.get_username()} "
                "(the old ones stop working): pass --execute"
            )
            return
        enrolment_print(
            self.stdout, staff_totp_enrol(user=user, actor=cli_actor()), qr=not options["no_qr"]
        )
