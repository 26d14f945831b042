"""Build a daily checklist now (pre- or post-market), store it, notify it (Telegram)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.cli import cli_actor
from apps.notifications.models import Notification
from apps.ops.checklists import checklist_text
from apps.ops.services.checklists import checklist_run


class Command(BaseCommand):
    help = (
        "Build the pre-market (spec 10.1) or post-market (10.3) checklist now, store it (page "
        "/ops/checklists/) and notify it: Telegram, plus e-mail when an item failed; delivered "
        "by the Celery worker, tracked in the admin under Notifications (--no-notify: don't). "
        "Exit 1 when an item failed (manual items still to tick do not count)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", choices=["pre", "post"], required=True)
        parser.add_argument("--no-notify", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        run = checklist_run(
            kind=options["kind"], actor=cli_actor(), notify=not options["no_notify"]
        )
        self.stdout.write(checklist_text(run))
        notification = (
            Notification.objects.filter(dedup_key=f"checklist:{run.pk}").order_by("-id").first()
        )
        if notification is not None:
            deliveries = ", ".join(
                f"{d.channel} {d.status}" + (f" ({d.last_error})" if d.last_error else "")
                for d in notification.deliveries.order_by("channel")
            )
            self.stdout.write(f"notification #{notification.pk}: {deliveries or 'no channel'}")
        failed = [item["label"] for item in run.items if item["status"] == "fail"]
        if failed:
            raise CommandError(
                f"{len(failed)} checklist item(s) failed: {'; '.join(failed)} "
                f"(details above, page /ops/checklists/{run.pk}/)"
            )
