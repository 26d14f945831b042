"""A closed incident is final, in PostgreSQL itself: its report cannot be rewritten.

The services refuse to edit a closed incident (``incident_update``) and never store a kill
report on one (``kill_report_record``); this BEFORE UPDATE OR DELETE row trigger refuses
any change to a row whose status is already 'closed', whoever asks (the admin, a script,
a person at psql). Closing itself is allowed: the row is still open when it is updated.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION tradebot_incident_closed_is_final() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'incident % is closed: its report is final (% refused)', OLD.id, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'a closed incident is never changed; a new KILL opens a new incident';
END;
$$ LANGUAGE plpgsql;
"""

TRIGGER = """
CREATE TRIGGER risk_incident_closed_is_final BEFORE UPDATE OR DELETE ON risk_incident
FOR EACH ROW WHEN (OLD.status = 'closed') EXECUTE FUNCTION tradebot_incident_closed_is_final();
"""


class Migration(migrations.Migration):
    dependencies = [("risk", "0004_alert_moved_to_notifications")]

    operations = [
        migrations.RunSQL(
            FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS tradebot_incident_closed_is_final();"
        ),
        migrations.RunSQL(
            TRIGGER,
            reverse_sql="DROP TRIGGER IF EXISTS risk_incident_closed_is_final ON risk_incident;",
        ),
    ]
