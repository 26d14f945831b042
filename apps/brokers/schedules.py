"""Beat schedules of the brokers app (installed by migration 0002; editable in the admin)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IntervalSchedule:
    name: str
    task: str
    every_seconds: int
    expire_seconds: int
    description: str
    kwargs: str = "{}"


BROKER_SCHEDULES = (
    IntervalSchedule(
        "brokers: sync (heartbeat, fills, in-flight orders; every 5 s)",
        "brokers.sync",
        5,
        4,
        "heartbeat and reconnect with backoff; alert after 2 min, PAUSE after the grace period",
    ),
    IntervalSchedule(
        "brokers: reconcile (every minute)",
        "brokers.reconcile",
        60,
        50,
        "positions, open orders, fills and cash against the broker; a discrepancy pauses trading",
    ),
    IntervalSchedule(
        "brokers: order outbox sweep (every 15 s)",
        "brokers.outbox_sweep",
        15,
        10,
        "re-enqueue orders whose enqueue was lost; deny stale ones",
    ),
)
# After the US close (16:00 New York): one more reconciliation of the day's books.
AFTER_CLOSE = {
    "name": "brokers: reconcile after the close (16:15 America/New_York, Mon-Fri)",
    "task": "brokers.reconcile",
    "minute": "15",
    "hour": "16",
    "day_of_week": "1-5",
    "timezone": "America/New_York",
    "expire_seconds": 3600,
}


def schedules_install(*, periodic_task_model, crontab_model, interval_model) -> int:  # noqa: ANN001
    written = 0
    for s in BROKER_SCHEDULES:
        interval, _ = interval_model.objects.get_or_create(every=s.every_seconds, period="seconds")
        periodic_task_model.objects.update_or_create(
            name=s.name,
            defaults={
                "task": s.task,
                "interval": interval,
                "crontab": None,
                "kwargs": s.kwargs,
                "expire_seconds": s.expire_seconds,
                "enabled": True,
                "description": s.description,
            },
        )
        written += 1
    crontab, _ = crontab_model.objects.get_or_create(
        minute=AFTER_CLOSE["minute"],
        hour=AFTER_CLOSE["hour"],
        day_of_week=AFTER_CLOSE["day_of_week"],
        day_of_month="*",
        month_of_year="*",
        timezone=AFTER_CLOSE["timezone"],
    )
    periodic_task_model.objects.update_or_create(
        name=AFTER_CLOSE["name"],
        defaults={
            "task": AFTER_CLOSE["task"],
            "crontab": crontab,
            "interval": None,
            "kwargs": '{"trigger": "schedule"}',
            "expire_seconds": AFTER_CLOSE["expire_seconds"],
            "enabled": True,
            "description": "end-of-day reconciliation after the US close",
        },
    )
    return written + 1


def schedule_names() -> list[str]:
    return [s.name for s in BROKER_SCHEDULES] + [AFTER_CLOSE["name"]]
