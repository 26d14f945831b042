"""Adds the quarterly stress test to the calendar.

Frozen data: what this migration installs, written out here; it imports no app code,
so editing the live schedules (apps/ops/schedules.py) never changes what it does.
"""

from django.db import migrations
from django.utils import timezone

TASKS = (
    {
        "name": "ops: stress test (quarterly, first Saturday of Jan/Apr/Jul/Oct 12:00 UTC)",
        "task": "ops.stress_test",
        "crontab": {
            "minute": "0",
            "hour": "12",
            "day_of_week": "6",
            "day_of_month": "1-7",
            "month_of_year": "1,4,7,10",
            "timezone": "UTC",
        },
        "kwargs": "{}",
        "expire_seconds": 21600,
        "description": "stress scenarios against the live book and its limits, markets closed (spec 7.1: quarterly, 2 h); after the 03:00 retrain of the same Saturday",
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
    dependencies = [("ops", "0004_stressreport")]

    operations = [migrations.RunPython(install, uninstall)]
