"""Position.fees was booked twice per fill (once by the accounting Position, once again by
the fill service): recompute every position's fees from the fills table, the record of
what was paid. Account.fees_paid was always right and is left alone."""

from django.db import migrations
from django.db.models import Sum


def fees_from_fills(apps, schema_editor):
    Position = apps.get_model("trading", "Position")
    Fill = apps.get_model("trading", "Fill")
    paid = {
        (row["account_id"], row["order__instrument_id"]): row["total"]
        for row in Fill.objects.values("account_id", "order__instrument_id").annotate(
            total=Sum("fee")
        )
    }
    changed = []
    for position in Position.objects.all():
        fees = paid.get((position.account_id, position.instrument_id)) or 0
        if position.fees != fees:
            position.fees = fees
            changed.append(position)
    Position.objects.bulk_update(changed, ["fees"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("trading", "0003_account_moved_to_accounts")]

    operations = [migrations.RunPython(fees_from_fills, migrations.RunPython.noop)]
