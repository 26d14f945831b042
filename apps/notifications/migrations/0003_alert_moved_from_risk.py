"""Alert moves here from apps.risk: state only, the table stays ``risk_alert``.

No SQL: the model is created in Django's migration state only (the table, its rows, its
index and its "one open alert per code" constraint are untouched). The content type row
follows (risk.alert -> notifications.alert), so admin permissions on alerts keep working.
apps.risk then drops the model from its state (risk 0004).
"""

from django.db import migrations, models


def content_type_move(apps, old_label, new_label, model):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if ContentType.objects.filter(app_label=new_label, model=model).exists():
        return  # already there (created by a post_migrate): leave both as they are
    ContentType.objects.filter(app_label=old_label, model=model).update(app_label=new_label)


def forward(apps, schema_editor):
    content_type_move(apps, "risk", "notifications", "alert")


def backward(apps, schema_editor):
    content_type_move(apps, "notifications", "risk", "alert")


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("notifications", "0002_schedules"),
        ("risk", "0002_control_and_monitoring"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Alert",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("severity", models.CharField(choices=[("info", "info"), ("warning", "warning"), ("error", "error"), ("critical", "critical")], max_length=8)),
                        ("code", models.CharField(max_length=96)),
                        ("message", models.TextField()),
                        ("data", models.JSONField(default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("resolved_at", models.DateTimeField(blank=True, null=True)),
                        ("resolved_by", models.CharField(blank=True, default="", max_length=128)),
                    ],
                    options={
                        "db_table": "risk_alert",
                        "ordering": ("-created_at", "-id"),
                        "constraints": [models.UniqueConstraint(condition=models.Q(("resolved_at__isnull", True)), fields=("code",), name="alert_one_open_per_code")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forward, backward, elidable=False),
    ]
