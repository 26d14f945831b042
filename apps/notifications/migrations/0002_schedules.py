"""The notifications app's beat schedules (sweep of stuck deliveries, watchdog check).

Frozen data: what this migration installs, written out here; it imports no app code,
so editing the live schedules (apps/ops/schedules.py) never changes what it does.
"""

from django.db import migrations
from django.utils import timezone

TASKS = (
    {
        "name": "notifications: sweep stuck deliveries (every 60 s)",
        "task": "notifications.sweep",
        "interval": {"every": 60, "period": "seconds"},
        "kwargs": "{}",
        "expire_seconds": 50,
        "description": "re-queue deliveries left pending (broker down) or sending (worker died)",
    },
    {
        "name": "notifications: Alertmanager watchdog check (every 60 s)",
        "task": "notifications.watchdog_check",
        "interval": {"every": 60, "period": "seconds"},
        "kwargs": "{}",
        "expire_seconds": 50,
        "description": "critical alert when the Watchdog is older than ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS",
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
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
