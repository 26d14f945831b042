"""Predictions per model version counted as they happen (a row trigger), for /metrics.

Counting a year of predictions at every scrape grows with the history (and the old
query's second join multiplied the rows); PostgreSQL keeps the two numbers up to date
on every INSERT, UPDATE and DELETE statement on ml_prediction, whoever writes (bulk loads
and psql included), in the writer's own transaction. The migration counts what exists.
"""

import django.db.models.deletion
from django.db import migrations, models


# Statement-level triggers with transition tables: one counter write per statement whatever
# its size (a row-level trigger rewrote the counter row once per prediction, and within one
# transaction each rewrite walks the versions left by the previous ones: a bulk load of a
# year of predictions took more than 15 minutes instead of seconds). An UPDATE that changes
# neither the version nor whether a prediction is resolved (decision_id) writes nothing.
FUNCTION = """
CREATE OR REPLACE FUNCTION ml_prediction_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ml_predictioncount AS c (model_version_id, total, resolved)
        SELECT model_version_id, count(*), count(outcome) FROM new_rows GROUP BY model_version_id
        ON CONFLICT (model_version_id) DO UPDATE
           SET total = c.total + EXCLUDED.total, resolved = c.resolved + EXCLUDED.resolved;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE ml_predictioncount AS c SET total = c.total - d.n, resolved = c.resolved - d.r
          FROM (SELECT model_version_id, count(*) AS n, count(outcome) AS r
                  FROM old_rows GROUP BY model_version_id) AS d
         WHERE c.model_version_id = d.model_version_id;
    ELSE
        INSERT INTO ml_predictioncount AS c (model_version_id, total, resolved)
        SELECT model_version_id, sum(n), sum(r) FROM (
            SELECT model_version_id, count(*) AS n, count(outcome) AS r
              FROM new_rows GROUP BY model_version_id
            UNION ALL
            SELECT model_version_id, -count(*), -count(outcome)
              FROM old_rows GROUP BY model_version_id
        ) AS d
        GROUP BY model_version_id
        HAVING sum(n) <> 0 OR sum(r) <> 0
        ON CONFLICT (model_version_id) DO UPDATE
           SET total = c.total + EXCLUDED.total, resolved = c.resolved + EXCLUDED.resolved;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

TRIGGERS = """
CREATE TRIGGER ml_prediction_count_insert AFTER INSERT ON ml_prediction
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ml_prediction_count();
CREATE TRIGGER ml_prediction_count_update AFTER UPDATE ON ml_prediction
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ml_prediction_count();
CREATE TRIGGER ml_prediction_count_delete AFTER DELETE ON ml_prediction
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ml_prediction_count();
CREATE TRIGGER ml_prediction_count_truncate AFTER TRUNCATE ON ml_prediction
    FOR EACH STATEMENT EXECUTE FUNCTION ml_prediction_count_truncate();
"""

TRUNCATE_FUNCTION = """
CREATE OR REPLACE FUNCTION ml_prediction_count_truncate() RETURNS trigger AS $$
BEGIN
    DELETE FROM ml_predictioncount;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

BACKFILL = """
INSERT INTO ml_predictioncount (model_version_id, total, resolved)
SELECT model_version_id, count(*), count(outcome) FROM ml_prediction GROUP BY model_version_id;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('ml', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='PredictionCount',
            fields=[
                ('model_version', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='prediction_count', serialize=False, to='ml.modelversion')),
                ('total', models.BigIntegerField(default=0)),
                ('resolved', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.AddIndex(
            model_name='calibrationsnapshot',
            index=models.Index(fields=['model_version', '-created_at', '-id'], name='ml_snapshot_latest'),
        ),
        migrations.RunSQL(
            FUNCTION + TRUNCATE_FUNCTION,
            reverse_sql="DROP FUNCTION IF EXISTS ml_prediction_count(); "
            "DROP FUNCTION IF EXISTS ml_prediction_count_truncate();",
        ),
        migrations.RunSQL(
            # The table locked while it is counted: no prediction counted twice or missed.
            "LOCK TABLE ml_prediction IN SHARE ROW EXCLUSIVE MODE;" + TRIGGERS + BACKFILL,
            reverse_sql="DROP TRIGGER IF EXISTS ml_prediction_count_insert ON ml_prediction; "
            "DROP TRIGGER IF EXISTS ml_prediction_count_update ON ml_prediction; "
            "DROP TRIGGER IF EXISTS ml_prediction_count_delete ON ml_prediction; "
            "DROP TRIGGER IF EXISTS ml_prediction_count_truncate ON ml_prediction;",
        ),
    ]
