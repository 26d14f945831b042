"""Thin Celery wrappers of the maintenance calendar (routed to the "maintenance" queue).

Each run is recorded as a MaintenanceRun (its last success is a Prometheus metric).
The schedules are in apps/ops/schedules.py (stored by django-celery-beat).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

ACTOR = "beat"


@shared_task(name="ops.backup", time_limit=4 * 3600, soft_time_limit=4 * 3600 - 60)
def backup() -> dict[str, Any]:
    from apps.ops.services.backups import backup_create
    from apps.ops.services.maintenance import maintenance_run

    with maintenance_run(task="backup", actor=ACTOR) as run:
        result = backup_create(actor=ACTOR)
        run.detail = {
            "backup": result.manifest["name"],
            "files": result.manifest["files"],
            "pruned": result.pruned,
        }
    return run.detail


@shared_task(name="ops.restore_test", time_limit=6 * 3600, soft_time_limit=6 * 3600 - 60)
def restore_test() -> dict[str, Any]:
    from apps.ops.services.restore import backup_restore_test

    return backup_restore_test(actor=ACTOR).detail


@shared_task(name="ops.vacuum", time_limit=3 * 3600, soft_time_limit=3 * 3600 - 60)
def vacuum() -> dict[str, Any]:
    from apps.ops.services.maintenance import maintenance_run, vacuum_run

    with maintenance_run(task="vacuum", actor=ACTOR) as run:
        run.detail = vacuum_run(actor=ACTOR)
    return run.detail


@shared_task(name="ops.logs_rotate")
def logs_rotate() -> dict[str, Any]:
    from apps.ops.services.maintenance import logs_rotate as rotate
    from apps.ops.services.maintenance import maintenance_run

    with maintenance_run(task="logs_rotate", actor=ACTOR) as run:
        run.detail = rotate(actor=ACTOR)
    return run.detail


@shared_task(name="ops.checklist")
def checklist(kind: str) -> int:
    from apps.ops.services.checklists import checklist_run
    from apps.ops.services.maintenance import maintenance_run

    with maintenance_run(task=f"checklist_{kind}", actor=ACTOR) as run:
        checklist = checklist_run(kind=kind, actor=ACTOR)
        run.detail = {"checklist": checklist.pk}
    return checklist.pk


@shared_task(name="ops.stress_test", time_limit=2 * 3600, soft_time_limit=2 * 3600 - 60)
def stress_test() -> dict[str, Any]:
    from apps.ops.stress import stress_test_run

    report = stress_test_run(actor=ACTOR)
    return {"report": report.pk, "outcome": report.outcome}


@shared_task(name="ops.heartbeat", time_limit=30, soft_time_limit=20)
def heartbeat() -> None:
    from apps.ops.services.maintenance import heartbeat_beat

    heartbeat_beat()
