"""The account FKs point at accounts.Account (moved from apps.trading): state only, no SQL.

The columns and their FK constraints already reference the same table, trading_account.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("risk", "0002_control_and_monitoring"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="equitymonitor",
                    name="account",
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="equity_monitor", to="accounts.account"),
                ),
                migrations.AlterField(
                    model_name="hypotheticaltrade",
                    name="account",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="hypothetical_trades", to="accounts.account"),
                ),
                migrations.AlterField(
                    model_name="risklimit",
                    name="account",
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="risk_limit", to="accounts.account"),
                ),
            ],
            database_operations=[],
        ),
    ]
