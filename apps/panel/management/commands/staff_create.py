"""Create a staff account with its authenticator and backup codes (printed once)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.staff import staff_create
from apps.core.cli import cli_actor

from ._enrolment import enrolment_print


class Command(BaseCommand):
    help = (
        "Create a staff account for the panel and the admin: a random password, a TOTP "
        "authenticator (issuer Tradebot) and 10 single-use backup codes, printed ONCE with a "
        "QR code to scan. A password alone can never enrol an authenticator, so this (or "
        "staff_totp_reset) is the only way in. Audited as cli:<os user>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--superuser", action="store_true", help="all permissions (admin included)"
        )
        parser.add_argument("--no-qr", action="store_true", help="print the URI only")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            enrolment = staff_create(
                username=options["username"],
                email=options["email"],
                superuser=options["superuser"],
                actor=cli_actor(),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        enrolment_print(self.stdout, enrolment, qr=not options["no_qr"])
