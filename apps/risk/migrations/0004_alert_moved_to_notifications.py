"""Alert now lives in apps.notifications (notifications 0003): state only, no SQL.

The model leaves this app's state; its table, risk_alert, is kept
(notifications.Alert has db_table = "risk_alert"). Nothing has a FK to Alert.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0003_alert_moved_from_risk"),
        ("risk", "0003_account_moved_to_accounts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name="Alert",
                ),
            ],
            database_operations=[],
        ),
    ]
