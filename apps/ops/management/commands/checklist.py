"""Build a daily checklist now (pre- or post-market), store it, send it to Telegram."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.ops.checklists import checklist_text
from apps.ops.cli import cli_actor
from apps.ops.services import checklist_run


class Command(BaseCommand):
    help = (
        "Build the pre-market (spec 10.1) or post-market (10.3) checklist now, store it (page "
        "/ops/checklists/) and send it to Telegram when TELEGRAM_BOT_TOKEN is set (--no-notify: don't)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", choices=["pre", "post"], required=True)
        parser.add_argument("--no-notify", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        run = checklist_run(
            kind=options["kind"], actor=cli_actor(), notify=not options["no_notify"]
        )
        self.stdout.write(checklist_text(run))
        if run.telegram_error:
            self.stderr.write(f"Telegram: {run.telegram_error}")
