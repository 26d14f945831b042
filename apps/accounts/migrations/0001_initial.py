"""Account moves here from apps.trading: state only, the table stays ``trading_account``.

No SQL: the model is created in Django's migration state only (the table, its rows, its
sequence and the foreign keys pointing at it are untouched). The content type row
follows (trading.account -> accounts.account), so the admin permissions granted on
accounts keep working. The FKs of the other apps are repointed by their own state-only
migrations, then apps.trading drops the model from its state (trading 0003).
"""

from decimal import Decimal

from django.db import migrations, models


def content_type_move(apps, old_label, new_label, model):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if ContentType.objects.filter(app_label=new_label, model=model).exists():
        return  # already there (created by a post_migrate): leave both as they are
    ContentType.objects.filter(app_label=old_label, model=model).update(app_label=new_label)


def forward(apps, schema_editor):
    content_type_move(apps, "trading", "accounts", "account")


def backward(apps, schema_editor):
    content_type_move(apps, "accounts", "trading", "account")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("trading", "0002_order_created_at_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Account",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=64, unique=True)),
                        ("broker", models.CharField(choices=[("paper", "paper simulator"), ("kraken", "Kraken"), ("ibkr", "Interactive Brokers")], default="paper", max_length=16)),
                        ("currency", models.CharField(default="USD", max_length=16)),
                        ("starting_cash", models.DecimalField(decimal_places=12, max_digits=30)),
                        ("cash", models.DecimalField(decimal_places=12, help_text="cash balance in the account currency", max_digits=30)),
                        ("fees_paid", models.DecimalField(decimal_places=12, default=Decimal("0"), max_digits=30)),
                        ("realized_pnl", models.DecimalField(decimal_places=12, default=Decimal("0"), max_digits=30)),
                        ("peak_equity", models.DecimalField(decimal_places=12, help_text="highest equity marked so far (drawdown reference)", max_digits=30)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "trading_account",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forward, backward, elidable=False),
    ]
