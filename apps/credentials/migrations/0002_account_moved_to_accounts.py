"""The account FK points at accounts.Account (moved from apps.trading): state only, no SQL.

The column and its FK constraint already reference the same table, trading_account.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("credentials", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="brokercredential",
                    name="account",
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="broker_credential", to="accounts.account"),
                ),
            ],
            database_operations=[],
        ),
    ]
