"""The notifications app's beat schedules (apps/notifications/schedules.py)."""

from django.db import migrations


def install(apps, schema_editor):
    from django.utils import timezone

    from apps.notifications.schedules import schedules_install

    schedules_install(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )
    # beat notices changes through this row (what PeriodicTask.save() would do).
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def uninstall(apps, schema_editor):
    from apps.notifications.schedules import SCHEDULES

    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[name for name, _, _ in SCHEDULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
