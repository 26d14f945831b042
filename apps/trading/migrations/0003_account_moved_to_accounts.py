"""Account now lives in apps.accounts (accounts 0001): state only, no SQL.

The FKs of orders, fills, positions and equity snapshots are repointed at
accounts.Account, then Account leaves this app's state. Its table, trading_account, is
kept (accounts.Account has db_table = "trading_account"); nothing is dropped. This runs
after every other app repointed its FKs, so no state still refers to trading.Account.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("brokers", "0003_account_moved_to_accounts"),
        ("credentials", "0002_account_moved_to_accounts"),
        ("risk", "0003_account_moved_to_accounts"),
        ("trading", "0002_order_created_at_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="account",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="orders", to="accounts.account"),
                ),
                migrations.AlterField(
                    model_name="equitysnapshot",
                    name="account",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="equity_snapshots", to="accounts.account"),
                ),
                migrations.AlterField(
                    model_name="fill",
                    name="account",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="fills", to="accounts.account"),
                ),
                migrations.AlterField(
                    model_name="position",
                    name="account",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="positions", to="accounts.account"),
                ),
                migrations.DeleteModel(
                    name="Account",
                ),
            ],
            database_operations=[],
        ),
    ]
