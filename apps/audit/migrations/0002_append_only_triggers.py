"""PostgreSQL itself keeps the decision log and audit trail append-only.

A BEFORE UPDATE OR DELETE row trigger raises for every role, superusers included,
so neither the app, the admin, nor a person at psql can rewrite history.
"""

from django.db import migrations

TABLES = ("audit_decisionlog", "audit_auditevent")

FUNCTION = """
CREATE OR REPLACE FUNCTION tradebot_reject_modification() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'decisions and audit events are never changed or deleted; record a new row instead';
END;
$$ LANGUAGE plpgsql;
"""


def trigger_sql(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION tradebot_reject_modification();"
    )


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS tradebot_reject_modification();"),
        *[
            migrations.RunSQL(trigger_sql(t), reverse_sql=f"DROP TRIGGER IF EXISTS {t}_append_only ON {t};")
            for t in TABLES
        ],
    ]
