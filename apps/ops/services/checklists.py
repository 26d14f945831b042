"""The pre- and post-market checklists (spec 10): a run stored and notified, manual items ticked."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.notifications.services.notifications import notify as notify_send
from apps.ops.exceptions import OpsError
from apps.ops.models import ChecklistRun


def checklist_run(
    *, kind: str, actor: str, now: datetime | None = None, notify: bool = True
) -> ChecklistRun:
    """Build the pre- or post-market checklist, store it, and notify it (unless ``notify``
    is False) through apps.notifications: Telegram always (a daily report is read there),
    plus e-mail when an item failed (severity "error"; else "warning"). Delivery happens
    after commit in the notification tasks (admin: Notifications, code checklist.<kind>).
    """
    from apps.ops.checklists import checklist_items, checklist_text

    now = now or timezone.now()
    items = checklist_items(kind=kind, now=now)
    run = ChecklistRun.objects.create(kind=kind, items=items, actor=actor)
    if notify:
        title, _, body = checklist_text(run).partition("\n")
        failed = [i["key"] for i in items if i["status"] == "fail"]
        notify_send(
            severity="error" if failed else "warning",
            code=f"checklist.{kind}",
            title=title,
            body=body,
            dedup_key=f"checklist:{run.pk}",
            data={"checklist": run.pk, "failed": failed},
        )
    return run


@transaction.atomic
def checklist_item_tick(*, run_id: int, key: str, actor: str, note: str = "") -> ChecklistRun:
    """Tick a manual item (e.g. the economic calendar) of a checklist; audited."""
    run = ChecklistRun.objects.select_for_update().get(pk=run_id)
    for item in run.items:
        if item["key"] == key:
            if not item.get("manual"):
                raise OpsError(f"{item['label']} is checked by the system, not ticked by hand")
            item.update(
                status="done",
                ticked_by=actor,
                ticked_at=timezone.now().isoformat(),
                detail=note.strip() or item.get("detail", ""),
            )
            break
    else:
        raise OpsError(f"checklist {run_id} has no item {key!r}")
    run.save(update_fields=["items"])
    audit_record(
        actor=actor,
        action="checklist.tick",
        target=f"checklist:{run.pk}",
        data={"item": key, "note": note},
    )
    return run
