"""The maintenance calendar and the beat heartbeat as django-celery-beat periodic tasks.

Frozen data: what this migration installs, written out here; it imports no app code,
so editing the live schedules (apps/ops/schedules.py) never changes what it does.
The ML calibration monitor (0003) and the stress test (0005) came later.
"""

from django.db import migrations
from django.utils import timezone

TASKS = (
    {
        "name": "ops: backup (daily 00:00 UTC)",
        "task": "ops.backup",
        "crontab": {
            "minute": "0",
            "hour": "0",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": "UTC",
        },
        "kwargs": "{}",
        "expire_seconds": 10800,
        "description": "pg_dump + Redis RDB + manifest; retention 30 d PostgreSQL / 7 d Redis (spec 7.1, 8.1)",
    },
    {
        "name": "ops: log rotation (daily 00:30 UTC)",
        "task": "ops.logs_rotate",
        "crontab": {
            "minute": "30",
            "hour": "0",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": "UTC",
        },
        "kwargs": "{}",
        "expire_seconds": 3600,
        "description": "rotate stale log files, delete those older than 90 days (spec 7.1, 8.1)",
    },
    {
        "name": "ops: vacuum (Sunday 02:00 UTC)",
        "task": "ops.vacuum",
        "crontab": {
            "minute": "0",
            "hour": "2",
            "day_of_week": "0",
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": "UTC",
        },
        "kwargs": "{}",
        "expire_seconds": 10800,
        "description": "VACUUM (ANALYZE) of the database (spec 7.1)",
    },
    {
        "name": "ml: retrain (quarterly, first Saturday of Jan/Apr/Jul/Oct 03:00 UTC)",
        "task": "ml.retrain",
        "crontab": {
            "minute": "0",
            "hour": "3",
            "day_of_week": "6",
            "day_of_month": "1-7",
            "month_of_year": "1,4,7,10",
            "timezone": "UTC",
        },
        "kwargs": "{}",
        "expire_seconds": 43200,
        "description": "quarterly model retrain on a weekend (spec 7.1; task owned by apps.ml)",
    },
    {
        "name": "ops: restore test (monthly, first Sunday 04:00 UTC)",
        "task": "ops.restore_test",
        "crontab": {
            "minute": "0",
            "hour": "4",
            "day_of_week": "0",
            "day_of_month": "1-7",
            "month_of_year": "*",
            "timezone": "UTC",
        },
        "kwargs": "{}",
        "expire_seconds": 43200,
        "description": "restore the newest backup into a throwaway database and verify it (spec 8.3)",
    },
    {
        "name": "ops: pre-market checklist (08:00 Europe/Madrid)",
        "task": "ops.checklist",
        "crontab": {
            "minute": "0",
            "hour": "8",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": "Europe/Madrid",
        },
        "kwargs": '{"kind": "pre"}',
        "expire_seconds": 1800,
        "description": "daily pre-market checklist (spec 10.1)",
    },
    {
        "name": "ops: post-market checklist (18:30 Europe/Madrid)",
        "task": "ops.checklist",
        "crontab": {
            "minute": "30",
            "hour": "18",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
            "timezone": "Europe/Madrid",
        },
        "kwargs": '{"kind": "post"}',
        "expire_seconds": 1800,
        "description": "daily post-market checklist (spec 10.3)",
    },
    {
        "name": "ops: beat heartbeat",
        "task": "ops.heartbeat",
        "interval": {"every": 60, "period": "seconds"},
        "kwargs": "{}",
        "expire_seconds": 50,
        "description": "proves beat and the maintenance worker alive (manage.py healthcheck)",
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
        ("ops", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
