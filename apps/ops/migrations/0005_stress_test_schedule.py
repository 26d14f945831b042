"""Adds the quarterly stress test to the calendar (schedules_install is idempotent)."""

from django.db import migrations

NAME = "ops: stress test (quarterly, first Saturday of Jan/Apr/Jul/Oct 12:00 UTC)"


def install(apps, schema_editor):
    from django.utils import timezone

    from apps.ops.schedules import schedules_install

    schedules_install(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )
    # beat notices changes through this row (what PeriodicTask.save() would do).
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def uninstall(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("ops", "0004_stressreport")]

    operations = [migrations.RunPython(install, uninstall)]
