"""Maintenance jobs and the record of their runs: vacuum, log rotation, the beat heartbeat."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.audit.services import audit_record
from apps.ops import backup as bk
from apps.ops.exceptions import OpsError
from apps.ops.models import MaintenanceRun, RunOutcome

HEARTBEAT_KEY = "ops:beat:heartbeat"


@contextlib.contextmanager
def maintenance_run(*, task: str, actor: str) -> Iterator[MaintenanceRun]:
    """Record one run of a maintenance job: started, then ok or failed with the error.

    The caller may fill ``run.detail`` while it works; it is saved at the end.
    Not to be used inside a transaction (the record must survive a failure).
    """
    run = MaintenanceRun.objects.create(task=task, started_at=timezone.now(), actor=actor)
    try:
        yield run
    except BaseException as exc:
        run.outcome = RunOutcome.FAILED
        message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        run.detail = {**run.detail, "error": message}
        run.finished_at = timezone.now()
        with contextlib.suppress(Exception):
            run.save()
        raise
    run.outcome = RunOutcome.OK
    run.finished_at = timezone.now()
    run.save()


def maintenance_last_success(*, task: str) -> MaintenanceRun | None:
    return (
        MaintenanceRun.objects.filter(task=task, outcome=RunOutcome.OK)
        .order_by("-finished_at")
        .first()
    )


def vacuum_run(*, actor: str) -> dict[str, Any]:
    """VACUUM (ANALYZE) the whole database (weekly, spec 7.1): reclaims space, refreshes stats."""
    started = time.monotonic()
    with bk.pg_connect(autocommit=True) as conn:
        before = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        conn.execute("VACUUM (ANALYZE)")
        after = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    detail = {
        "seconds": round(time.monotonic() - started, 3),
        "bytes_before": before,
        "bytes_after": after,
    }
    audit_record(actor=actor, action="maintenance.vacuum", data=detail)
    return detail


def logs_rotate(
    *, actor: str, now: datetime | None = None, log_dir: Path | None = None
) -> dict[str, Any]:
    """Rotate stale log files and delete rotated ones older than LOG_RETENTION_DAYS.

    The file handler (apps/ops/logging.py) rotates each process's file at midnight
    UTC on its next write; a process that wrote nothing since is rotated here, and
    files of processes that no longer run are removed after the retention.
    """
    from apps.ops.logging import logs_prune

    directory = log_dir or (Path(settings.LOG_DIR) if getattr(settings, "LOG_DIR", "") else None)
    if directory is None:
        return {
            "skipped": "LOG_DIR is not set: logs go to stdout (the container runtime rotates them)"
        }
    if not Path(directory).is_dir():
        raise OpsError(
            f"LOG_DIR {directory} is not a directory: nothing rotated. Create it (owned by the "
            "app user) or mount the logs volume there"
        )
    detail = logs_prune(
        directory=Path(directory),
        now=now or timezone.now(),
        keep_days=getattr(settings, "LOG_RETENTION_DAYS", 90),
    )
    if detail["deleted"] or detail["rotated"]:
        audit_record(actor=actor, action="maintenance.logs_rotate", data=detail)
    return detail


def heartbeat_beat(*, now: datetime | None = None) -> None:
    """Written every minute by the ops.heartbeat task (beat sends it, a worker runs it)."""
    from django.core.cache import cache

    cache.set(HEARTBEAT_KEY, (now or timezone.now()).timestamp(), timeout=24 * 3600)
