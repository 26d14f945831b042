"""Installs the brokers' beat schedules (sync, reconcile, outbox sweep, after-close reconcile).

Frozen data: what this migration installs, written out here; it imports no app code,
so editing the live schedules (apps/ops/schedules.py) never changes what it does.
"""

from django.db import migrations
from django.utils import timezone

TASKS = (
    {
        "name": "brokers: sync (heartbeat, fills, in-flight orders; every 5 s)",
        "task": "brokers.sync",
        "interval": {"every": 5, "period": "seconds"},
        "kwargs": "{}",
        "expire_seconds": 4,
        "description": "heartbeat and reconnect with backoff; alert after 2 min, PAUSE after the grace period",
    },
    {
        "name": "brokers: reconcile (every minute)",
        "task": "brokers.reconcile",
        "interval": {"every": 60, "period": "seconds"},
        "kwargs": "{}",
        "expire_seconds": 50,
        "description": "positions, open orders, fills and cash against the broker; a discrepancy pauses trading",
    },
    {
        "name": "brokers: order outbox sweep (every 15 s)",
        "task": "brokers.outbox_sweep",
        "interval": {"every": 15, "period": "seconds"},
        "kwargs": "{}",
        "expire_seconds": 10,
        "description": "re-enqueue orders whose enqueue was lost; deny stale ones",
    },
    {
        "name": "brokers: reconcile after the close (16:15 America/New_York, Mon-Fri)",
        "task": "brokers.reconcile",
        "crontab": {
            "minute": "15",
            "hour": "16",
            "day_of_week": "1-5",
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": "America/New_York",
        },
        "kwargs": '{"trigger": "schedule"}',
        "expire_seconds": 3600,
        "description": "end-of-day reconciliation after the US close",
    },
)


def install(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    for t in TASKS:
        crontab = interval = None
        if "crontab" in t:
            crontab, _ = CrontabSchedule.objects.get_or_create(**t["crontab"])
        else:
            interval, _ = IntervalSchedule.objects.get_or_create(**t["interval"])
        PeriodicTask.objects.update_or_create(
            name=t["name"],
            defaults={
                "task": t["task"],
                "crontab": crontab,
                "interval": interval,
                "kwargs": t["kwargs"],
                "expire_seconds": t["expire_seconds"],
                "enabled": True,
                "description": t["description"],
            },
        )
    # beat notices changes through this row (what PeriodicTask.save() would do).
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def uninstall(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[t["name"] for t in TASKS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("brokers", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
