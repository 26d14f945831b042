"""Adds the ML calibration monitor to the calendar (schedules_install is idempotent)."""

from django.db import migrations


def install(apps, schema_editor):
    from apps.ops.schedules import schedules_install

    schedules_install(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )


def uninstall(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name="ml: calibration monitor (every 5 min)"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("ops", "0002_maintenance_schedules")]

    operations = [migrations.RunPython(install, uninstall)]
