"""The maintenance calendar as django-celery-beat periodic tasks (apps/ops/schedules.py)."""

from django.db import migrations


def install(apps, schema_editor):
    from apps.ops.schedules import schedules_install

    schedules_install(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )
    # beat notices changes through this row (what PeriodicTask.save() would do).
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def uninstall(apps, schema_editor):
    from apps.ops.schedules import HEARTBEAT_NAME, MAINTENANCE_SCHEDULES

    names = [s.name for s in MAINTENANCE_SCHEDULES] + [HEARTBEAT_NAME]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
