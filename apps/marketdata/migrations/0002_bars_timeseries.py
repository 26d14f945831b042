"""Bars as a time series: a TimescaleDB hypertable when the extension is available,
otherwise a plain table with a BRIN index on ts (tiny, and ideal for append-mostly
time-ordered rows)."""

from django.db import migrations


def forwards(apps, schema_editor):
    cursor = schema_editor.connection.cursor()
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    if cursor.fetchone():
        cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cursor.execute(
            "SELECT create_hypertable('marketdata_bar', 'ts', migrate_data => true, if_not_exists => true)"
        )
    else:
        cursor.execute("CREATE INDEX IF NOT EXISTS marketdata_bar_ts_brin ON marketdata_bar USING brin (ts)")


def backwards(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS marketdata_bar_ts_brin")


class Migration(migrations.Migration):
    dependencies = [("marketdata", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
