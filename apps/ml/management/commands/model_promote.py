"""Promote a candidate model to active (only if it beats the active one, unless forced)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.ml.domain.errors import MlError
from apps.ml.management.commands._common import cli_actor, one_line


class Command(BaseCommand):
    help = (
        "Make VERSION the active model. It must beat the active model on the candidate's "
        "held-out window (lower log loss, ECE not above the warning level), both scored on "
        "the same bars. --force --reason TEXT overrides the comparison and is audited. "
        "The model file's sha256 is checked first; on any error the active model is unchanged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", help="model version (see model_list)")
        parser.add_argument("--force", action="store_true", help="skip the comparison (audited)")
        parser.add_argument("--reason", default="", help="why (required with --force)")

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.ml.services import model_promote

        try:
            mv = model_promote(
                version=options["version"],
                actor=cli_actor(),
                force=options["force"],
                reason=options["reason"],
            )
        except MlError as exc:
            raise one_line(exc) from None
        self.stdout.write(f"{mv.version} is now the active model (promoted by {mv.promoted_by})")
