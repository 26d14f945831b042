"""Beat schedules of the notifications app (stored by django-celery-beat, migration 0002)."""

from __future__ import annotations

EVERY_SECONDS = 60
SCHEDULES = (
    (
        "notifications: sweep stuck deliveries (every 60 s)",
        "notifications.sweep",
        "re-queue deliveries left pending (broker down) or sending (worker died)",
    ),
    (
        "notifications: Alertmanager watchdog check (every 60 s)",
        "notifications.watchdog_check",
        "critical alert when the Watchdog is older than ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS",
    ),
)


def schedules_install(*, periodic_task_model, interval_model) -> int:  # noqa: ANN001
    """Create or update the schedules (takes the migration's historical models)."""
    interval, _ = interval_model.objects.get_or_create(every=EVERY_SECONDS, period="seconds")
    for name, task, description in SCHEDULES:
        periodic_task_model.objects.update_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": interval,
                "crontab": None,
                "kwargs": "{}",
                "expire_seconds": EVERY_SECONDS - 10,
                "enabled": True,
                "description": description,
            },
        )
    return len(SCHEDULES)
