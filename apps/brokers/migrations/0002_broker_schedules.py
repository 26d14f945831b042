"""Installs the brokers' beat schedules (sync, reconcile, outbox sweep, after-close reconcile)."""

from django.db import migrations
from django.utils import timezone


def install(apps, schema_editor):
    from apps.brokers.schedules import schedules_install

    schedules_install(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def uninstall(apps, schema_editor):
    from apps.brokers.schedules import schedule_names

    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=schedule_names()
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("brokers", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
