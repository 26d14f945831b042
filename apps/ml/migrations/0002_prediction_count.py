"""Predictions per model version counted as they happen (a row trigger), for /metrics.

Counting a year of predictions at every scrape grows with the history (and the old
query's second join multiplied the rows); PostgreSQL keeps the two numbers up to date
on every INSERT, UPDATE and DELETE of ml_prediction, whoever writes (bulk loads and
psql included), in the writer's own transaction. The migration counts what exists.
"""

import django.db.models.deletion
from django.db import migrations, models


FUNCTION = """
CREATE OR REPLACE FUNCTION ml_prediction_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE ml_predictioncount
           SET total = total - 1, resolved = resolved - (OLD.outcome IS NOT NULL)::int
         WHERE model_version_id = OLD.model_version_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ml_predictioncount AS c (model_version_id, total, resolved)
        VALUES (NEW.model_version_id, 1, (NEW.outcome IS NOT NULL)::int)
        ON CONFLICT (model_version_id) DO UPDATE
           SET total = c.total + 1, resolved = c.resolved + EXCLUDED.resolved;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

# Only updates that move a prediction between versions or resolve / unresolve it count.
TRIGGERS = """
CREATE TRIGGER ml_prediction_count_insert_delete AFTER INSERT OR DELETE ON ml_prediction
    FOR EACH ROW EXECUTE FUNCTION ml_prediction_count();
CREATE TRIGGER ml_prediction_count_update AFTER UPDATE OF model_version_id, outcome ON ml_prediction
    FOR EACH ROW
    WHEN (OLD.model_version_id IS DISTINCT FROM NEW.model_version_id
          OR (OLD.outcome IS NULL) IS DISTINCT FROM (NEW.outcome IS NULL))
    EXECUTE FUNCTION ml_prediction_count();
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
            reverse_sql="DROP TRIGGER IF EXISTS ml_prediction_count_insert_delete ON ml_prediction; "
            "DROP TRIGGER IF EXISTS ml_prediction_count_update ON ml_prediction; "
            "DROP TRIGGER IF EXISTS ml_prediction_count_truncate ON ml_prediction;",
        ),
    ]
