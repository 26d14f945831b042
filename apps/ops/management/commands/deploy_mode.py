"""Pause trading for a deploy, and give it back its mode after (scripts/deploy.sh)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ops.services.deploy import deploy_pause, deploy_restore
from apps.risk.exceptions import ModeChangeRefused


class Command(BaseCommand):
    help = (
        "Around a deploy (scripts/deploy.sh): 'pause' sets NORMAL or OBSERVATION to PAUSE "
        "(a PAUSE or KILL in place is left as it is); 'restore' returns to the mode before that "
        "pause, only if the pause is still the last mode change (a person, a rule or the kill "
        "switch that changed the mode meanwhile wins). Audited as 'deploy'. Dry run unless "
        "--execute. Exit 1 when the mode could not be changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["pause", "restore"])
        parser.add_argument(
            "--release", required=True, help="the commit or tag being deployed (in the audit)"
        )
        parser.add_argument("--execute", action="store_true", help="act; without it, a dry run")

    def handle(self, *args: Any, **options: Any) -> None:
        step = deploy_pause if options["action"] == "pause" else deploy_restore
        try:
            result = step(release=options["release"], execute=options["execute"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except ModeChangeRefused as exc:
            raise CommandError(f"the mode could not be changed: {exc.message}") from exc
        self.stdout.write(result.message)
