"""TRUNCATE of the decision log and the audit trail is refused too.

Migration 0002's row triggers stop UPDATE and DELETE; TRUNCATE fires no row trigger, so a
statement-level BEFORE TRUNCATE trigger refuses it. All the triggers are ENABLE ALWAYS: they
fire under ``session_replication_role = replica`` as well.

The application role cannot TRUNCATE these tables anyway (it has INSERT and SELECT only,
apps/core/db_roles.py); the trigger also binds the owner. One way through is left, on
purpose: a superuser session that sets ``tradebot.allow_truncate = on``. Django empties the
test databases between transactional tests with TRUNCATE (the test settings set it on the
suite's own, superuser, connection); a superuser could drop the trigger anyway, which is
why the application never connects as one (docs/security.md).
"""

from django.db import migrations

TABLES = ("audit_decisionlog", "audit_auditevent")

FUNCTION = """
CREATE OR REPLACE FUNCTION tradebot_reject_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('tradebot.allow_truncate', true) = 'on'
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'decisions and audit events are never changed or deleted; record a new row instead';
END;
$$ LANGUAGE plpgsql;
"""


def forward_sql(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION tradebot_reject_truncate();"
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate;"
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only;"
    )


def reverse_sql(table: str) -> str:
    return (
        f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only;"
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};"
    )


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_decisionlog_prediction_id")]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS tradebot_reject_truncate();"),
        *[migrations.RunSQL(forward_sql(t), reverse_sql=reverse_sql(t)) for t in TABLES],
    ]
