"""Adds the ML calibration monitor to the calendar.

Frozen data: what this migration installs, written out here; it imports no app code,
so editing the live schedules (apps/ops/schedules.py) never changes what it does.
"""

from django.db import migrations

TASKS = (
    {
        "name": "ml: calibration monitor (every 5 min)",
        "task": "ml.calibration_monitor",
        "crontab": {
            "minute": "*/5",
            "hour": "*",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": "UTC",
        },
        "kwargs": "{}",
        "expire_seconds": 240,
        "description": "resolve predictions, live ECE and feature drift; > 0.15 moves ML to observation",
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


def uninstall(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[t["name"] for t in TASKS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("ops", "0002_maintenance_schedules")]

    operations = [migrations.RunPython(install, uninstall)]
