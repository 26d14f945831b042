"""The account FKs point at accounts.Account (moved from apps.trading): state only, no SQL.

The columns and their FK constraints already reference the same table, trading_account.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("brokers", "0002_broker_schedules"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="brokersession",
                    name="account",
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="broker_session", to="accounts.account"),
                ),
                migrations.AlterField(
                    model_name="discrepancy",
                    name="account",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="discrepancies", to="accounts.account"),
                ),
                migrations.AlterField(
                    model_name="reconciliationrun",
                    name="account",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="reconciliation_runs", to="accounts.account"),
                ),
            ],
            database_operations=[],
        ),
    ]
