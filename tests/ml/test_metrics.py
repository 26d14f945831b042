"""ml_predictions_total and the ML collector on real PostgreSQL: exact counts, kept by the
database as predictions are written, and a scrape that never reads the predictions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from apps.ml.metrics import MlCollector
from apps.ml.models import CalibrationSnapshot, ModelVersion, Prediction, PredictionCount

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def version(name: str, status: str = "active") -> ModelVersion:
    return ModelVersion.objects.create(
        version=name,
        created_by="test",
        algorithm="hgb",
        instrument="BTC-USDT",
        train_start=T0,
        train_end=T0,
        heldout_start=T0,
        heldout_end=T0,
        data_path="-",
        data_sha256="0" * 64,
        file_path="-",
        file_sha256="0" * 64,
        status=status,
    )


def predictions(mv: ModelVersion, n: int, resolved: int, instrument: str = "BTC-USDT") -> None:
    Prediction.objects.bulk_create(
        Prediction(
            model_version=mv,
            instrument=instrument,
            bar_ts=T0 + timedelta(minutes=i),
            horizon=30,
            probability=0.5,
            features=[],
            features_hash="x",
            outcome=(i % 2 == 0) if i < resolved else None,
            resolved_at=T0 if i < resolved else None,
        )
        for i in range(n)
    )


def scraped() -> dict[str, dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in MlCollector().collect():
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value
    return out


def counted() -> dict[int, tuple[int, int]]:
    """What counting the predictions gives, per version: (total, resolved)."""
    return {
        row["model_version"]: (row["total"], row["resolved"])
        for row in Prediction.objects.values("model_version")
        .annotate(total=Count("id"), resolved=Count("outcome"))
        .order_by()
    }


def kept() -> dict[int, tuple[int, int]]:
    return {
        c.model_version_id: (c.total, c.resolved)
        for c in PredictionCount.objects.all()
        if c.total or c.resolved
    }


def test_predictions_total_when_some_resolved_then_exact_per_version_and_state() -> None:
    # Arrange: the old query multiplied the rows (resolved x total); two versions apart
    live = version("live-1")
    old = version("old-1", status="retired")
    predictions(live, 1269, resolved=1200)
    predictions(old, 40, resolved=40, instrument="ETH-USDT")
    version("candidate-1", status="candidate")  # no predictions, not active: not listed

    # Act
    total = scraped()["ml_predictions_total"]

    # Assert
    assert total == {
        ("live-1", "true"): 1200,
        ("live-1", "false"): 69,
        ("old-1", "true"): 40,
        ("old-1", "false"): 0,
    }


def test_predictions_total_when_active_without_predictions_then_zero_not_absent() -> None:
    version("fresh-1")

    assert scraped()["ml_predictions_total"] == {("fresh-1", "true"): 0, ("fresh-1", "false"): 0}


def test_prediction_counts_when_rows_logged_resolved_moved_and_deleted_then_match_a_count() -> None:
    from apps.ml import services

    a, b = version("a-1"), version("b-1", status="retired")
    predictions(a, 30, resolved=10)
    pending = list(Prediction.objects.filter(model_version=a, outcome__isnull=True)[:8])
    closes = {}
    for p in pending:  # the live resolver's path: save() of outcome and resolved_at
        closes[(p.instrument, p.bar_ts)] = 100.0
        closes[(p.instrument, p.bar_ts + timedelta(minutes=p.horizon))] = 101.0

    services.predictions_resolve(closes=closes, now=T0)
    Prediction.objects.filter(pk__in=[p.pk for p in pending[:3]]).update(outcome=None)
    moved = Prediction.objects.filter(model_version=a).order_by("bar_ts")[:4]
    Prediction.objects.filter(pk__in=[p.pk for p in moved]).update(model_version=b)
    Prediction.objects.filter(
        pk__in=Prediction.objects.filter(model_version=a, outcome__isnull=True).values("pk")[:2]
    ).delete()
    Prediction.objects.filter(pk=pending[-1].pk).update(probability=0.7)  # not counted

    assert kept() == counted()
    assert counted()[a.pk][0] == 30 - 4 - 2


def test_ml_collector_when_scraped_then_one_query_that_never_reads_the_predictions() -> None:
    mv = version("live-2")
    predictions(mv, 200, resolved=150)
    for ece in (0.2, 0.05):  # the latest snapshot is the one exported
        CalibrationSnapshot.objects.create(
            model_version=mv, n=150, n_bins=10, ece=ece, psi_max=ece * 2, level="ok"
        )

    with CaptureQueriesContext(connection) as queries:
        values = scraped()

    assert len(queries) == 1
    assert '"ml_prediction"' not in queries[0]["sql"]
    assert values["ml_calibration_ece"] == {("live-2",): 0.05}
    assert values["ml_feature_psi_max"] == {("live-2",): 0.1}
    assert values["ml_predictions_total"] == {("live-2", "true"): 150, ("live-2", "false"): 50}


def test_prediction_counts_when_thousands_logged_in_one_statement_then_one_counter_write() -> None:
    """The counter is written once per statement, not once per prediction: a bulk load (or a
    backfill) in one transaction would otherwise rewrite one row thousands of times, each
    rewrite walking the versions the previous ones left (minutes for a year of data)."""
    mv = version("bulk-1")

    def counter_writes() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_xact_user_tables "
                "WHERE relname = %s",
                [PredictionCount._meta.db_table],
            )
            return int(cursor.fetchone()[0])

    before = counter_writes()
    predictions(mv, 5000, resolved=4000)
    Prediction.objects.filter(model_version=mv, outcome__isnull=True).update(
        outcome=True, resolved_at=T0
    )
    Prediction.objects.filter(model_version=mv).update(decision_id=1)  # counts unchanged

    assert counter_writes() - before == 2
    assert kept() == counted() == {mv.pk: (5000, 5000)}
