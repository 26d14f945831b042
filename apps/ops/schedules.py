"""The maintenance calendar (spec 7.1, 8.3, 10): every Celery beat schedule in one place.

Stored by django-celery-beat in the database (migration 0002 creates them; the admin's
"Periodic tasks" edits them). Each has an expiry so that a beat or a worker that was
down does not fire a backlog of stale runs when it comes back. Times are in the zone
named, so 08:00 Europe/Madrid stays 08:00 in Madrid across the DST changes.

Celery's crontab matches day_of_week AND day_of_month (not cron's OR), so
"day_of_week=6, day_of_month=1-7" is the first Saturday of the month.
"""

from __future__ import annotations

from dataclasses import dataclass

HEARTBEAT_TASK = "ops.heartbeat"
HEARTBEAT_NAME = "ops: beat heartbeat"
HEARTBEAT_EVERY_SECONDS = 60


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    minute: str
    hour: str
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    timezone: str = "UTC"
    expire_seconds: int = 3600
    kwargs: str = "{}"
    description: str = ""


MAINTENANCE_SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        "ops: backup (daily 00:00 UTC)",
        "ops.backup",
        "0",
        "0",
        expire_seconds=3 * 3600,
        description="pg_dump + Redis RDB + manifest; retention 30 d PostgreSQL / 7 d Redis (spec 7.1, 8.1)",
    ),
    Schedule(
        "ops: log rotation (daily 00:30 UTC)",
        "ops.logs_rotate",
        "30",
        "0",
        expire_seconds=3600,
        description="rotate stale log files, delete those older than 90 days (spec 7.1, 8.1)",
    ),
    Schedule(
        "ops: vacuum (Sunday 02:00 UTC)",
        "ops.vacuum",
        "0",
        "2",
        day_of_week="0",
        expire_seconds=3 * 3600,
        description="VACUUM (ANALYZE) of the database (spec 7.1)",
    ),
    Schedule(
        "ml: retrain (quarterly, first Saturday of Jan/Apr/Jul/Oct 03:00 UTC)",
        "ml.retrain",
        "0",
        "3",
        day_of_week="6",
        day_of_month="1-7",
        month_of_year="1,4,7,10",
        expire_seconds=12 * 3600,
        description="quarterly model retrain on a weekend (spec 7.1; task owned by apps.ml)",
    ),
    Schedule(
        "ml: calibration monitor (every 5 min)",
        "ml.calibration_monitor",
        "*/5",
        "*",
        expire_seconds=240,
        description="resolve predictions, live ECE and feature drift; > 0.15 moves ML to observation",
    ),
    Schedule(
        "ops: restore test (monthly, first Sunday 04:00 UTC)",
        "ops.restore_test",
        "0",
        "4",
        day_of_week="0",
        day_of_month="1-7",
        expire_seconds=12 * 3600,
        description="restore the newest backup into a throwaway database and verify it (spec 8.3)",
    ),
    Schedule(
        "ops: stress test (quarterly, first Saturday of Jan/Apr/Jul/Oct 12:00 UTC)",
        "ops.stress_test",
        "0",
        "12",
        day_of_week="6",
        day_of_month="1-7",
        month_of_year="1,4,7,10",
        expire_seconds=6 * 3600,
        description="stress scenarios against the live book and its limits, markets closed "
        "(spec 7.1: quarterly, 2 h); after the 03:00 retrain of the same Saturday",
    ),
    Schedule(
        "ops: pre-market checklist (08:00 Europe/Madrid)",
        "ops.checklist",
        "0",
        "8",
        timezone="Europe/Madrid",
        expire_seconds=1800,
        kwargs='{"kind": "pre"}',
        description="daily pre-market checklist (spec 10.1)",
    ),
    Schedule(
        "ops: post-market checklist (18:30 Europe/Madrid)",
        "ops.checklist",
        "30",
        "18",
        timezone="Europe/Madrid",
        expire_seconds=1800,
        kwargs='{"kind": "post"}',
        description="daily post-market checklist (spec 10.3)",
    ),
)


def schedules_install(*, periodic_task_model, crontab_model, interval_model) -> int:  # noqa: ANN001
    """Create or update the maintenance schedules (used by the data migration).

    Takes the models as arguments so that a migration can pass its historical models.
    Returns the number of periodic tasks written.
    """
    written = 0
    for s in MAINTENANCE_SCHEDULES:
        crontab, _ = crontab_model.objects.get_or_create(
            minute=s.minute,
            hour=s.hour,
            day_of_week=s.day_of_week,
            day_of_month=s.day_of_month,
            month_of_year=s.month_of_year,
            timezone=s.timezone,
        )
        periodic_task_model.objects.update_or_create(
            name=s.name,
            defaults={
                "task": s.task,
                "crontab": crontab,
                "interval": None,
                "kwargs": s.kwargs,
                "expire_seconds": s.expire_seconds,
                "enabled": True,
                "description": s.description,
            },
        )
        written += 1
    interval, _ = interval_model.objects.get_or_create(
        every=HEARTBEAT_EVERY_SECONDS, period="seconds"
    )
    periodic_task_model.objects.update_or_create(
        name=HEARTBEAT_NAME,
        defaults={
            "task": HEARTBEAT_TASK,
            "interval": interval,
            "crontab": None,
            "kwargs": "{}",
            "expire_seconds": HEARTBEAT_EVERY_SECONDS - 10,
            "enabled": True,
            "description": "proves beat and the maintenance worker alive (manage.py healthcheck)",
        },
    )
    return written + 1
