"""Adds the market-data watchdog (every 15 s) to the calendar.

Frozen data: what this migration installs, written out here; it imports no app code,
so editing the live schedules (apps/ops/schedules.py) never changes what it does.
"""

from django.db import migrations
from django.utils import timezone

TASKS = (
    {
        "name": "engine: market-data watchdog (every 15 s)",
        "task": "engine.feeds_watch",
        "interval": {"every": 15, "period": "seconds"},
        "kwargs": "{}",
        "expire_seconds": 10,
        "description": "alert when a traded series has no bar 2 min past due, PAUSE after 5 min; resume after it is back and reconciliation is clean",
    },
)


def install(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    for t in TASKS:
        interval, _ = IntervalSchedule.objects.get_or_create(**t["interval"])
        PeriodicTask.objects.update_or_create(
            name=t["name"],
            defaults={
                "task": t["task"],
                "crontab": None,
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
    dependencies = [("ops", "0005_stress_test_schedule")]

    operations = [migrations.RunPython(install, uninstall)]
