"""pause / resume / kill: thin wrappers over the risk services, dry run by default."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.cli import cli_actor
from apps.ops.exceptions import OpsError
from apps.ops.services.runbooks import mode_change


class ModeCommand(BaseCommand):
    target = ""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reason", required=True, help="why (goes into the audit trail)")
        parser.add_argument("--execute", action="store_true", help="act; without it, a dry run")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            out = mode_change(
                target=self.target,
                actor=cli_actor(),
                reason=options["reason"],
                execute=options["execute"],
            )
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(out)
        if not options["execute"]:
            raise CommandError("This was a dry run. Pass --execute to apply.")
