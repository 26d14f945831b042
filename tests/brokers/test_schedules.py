"""The brokers' beat schedules: stored by migration, with expiries, on the right queues,
and the after-close reconciliation at 16:15 New York across the US DST change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from apps.core.queues import CeleryQueue
from apps.ops.schedules import AFTER_CLOSE, BROKER_SCHEDULES
from tests.ops.test_schedules import next_run

pytestmark = pytest.mark.django_db


def test_migration_when_applied_then_broker_schedules_stored_with_expiries() -> None:
    for s in BROKER_SCHEDULES:
        task = PeriodicTask.objects.get(name=s.name)
        assert task.enabled
        assert task.interval.every == s.every_seconds
        assert 0 < task.expire_seconds <= s.every_seconds  # a backlog never stampedes a broker
    after_close = PeriodicTask.objects.get(name=AFTER_CLOSE.name)
    assert after_close.expire_seconds == AFTER_CLOSE.expire_seconds


def test_routes_when_broker_tasks_then_sender_owns_the_session() -> None:
    routes = settings.CELERY_TASK_ROUTES
    assert routes["brokers.sync"]["queue"] == CeleryQueue.EXECUTION.value
    assert routes["brokers.reconcile"]["queue"] == CeleryQueue.EXECUTION.value
    assert routes["brokers.outbox_sweep"]["queue"] == CeleryQueue.RECONCILIATION.value


@pytest.mark.parametrize(
    ("now", "expected_utc"),
    [
        # Friday before the US switch to summer time (EST, UTC-5) -> Monday after it (EDT, UTC-4)
        (datetime(2026, 3, 6, 22, 0, tzinfo=UTC), datetime(2026, 3, 9, 20, 15, tzinfo=UTC)),
        (datetime(2026, 3, 5, 12, 0, tzinfo=UTC), datetime(2026, 3, 5, 21, 15, tzinfo=UTC)),
        # back to EST in November
        (datetime(2026, 10, 30, 21, 0, tzinfo=UTC), datetime(2026, 11, 2, 21, 15, tzinfo=UTC)),
    ],
)
def test_after_close_reconcile_when_dst_changes_then_1615_new_york_on_weekdays(now, expected_utc):
    task = PeriodicTask.objects.get(name=AFTER_CLOSE.name)
    assert next_run(task, now) == expected_utc
