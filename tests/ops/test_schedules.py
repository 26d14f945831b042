"""The beat schedules: the migrated database holds exactly what apps/ops/schedules.py
declares (and migrations import no app code), and the maintenance calendar as
django-celery-beat builds it: next run times in each zone, across the Europe/Madrid DST
changes, with a fixed "now"."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from apps.core.queues import CeleryQueue
from apps.ops.schedules import (
    HEARTBEAT_NAME,
    MAINTENANCE_SCHEDULES,
    SCHEDULES,
    Crontab,
    Interval,
)

pytestmark = pytest.mark.django_db

MADRID = ZoneInfo("Europe/Madrid")
ROOT = Path(__file__).resolve().parents[2]


def task_named(prefix: str) -> PeriodicTask:
    return PeriodicTask.objects.get(name__startswith=prefix)


def next_run(task: PeriodicTask, now: datetime) -> datetime:
    """When beat will run ``task`` next if it last ran at ``now`` (beat's own schedule object)."""
    schedule = task.schedule  # TzAwareCrontab with the row's time zone
    schedule.nowfun = lambda: now.astimezone(schedule.tz)
    last = now.astimezone(schedule.tz)
    when = now + schedule.remaining_estimate(last)
    # beat's decision agrees: not due a second before, due a second after
    schedule.nowfun = lambda: (when - timedelta(seconds=1)).astimezone(schedule.tz)
    assert schedule.is_due(last).is_due is False
    schedule.nowfun = lambda: (when + timedelta(seconds=1)).astimezone(schedule.tz)
    assert schedule.is_due(last).is_due is True
    return when.astimezone(UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def declared(s: Crontab | Interval) -> dict[str, object]:
    """A schedule of apps/ops/schedules.py as the fields of its PeriodicTask row."""
    if isinstance(s, Crontab):
        when = ("crontab", s.minute, s.hour, s.day_of_week, s.day_of_month, s.month_of_year)
        when += (s.timezone,)
    else:
        when = ("interval", s.every_seconds, "seconds")
    return {
        "task": s.task,
        "schedule": when,
        "args": "[]",
        "kwargs": s.kwargs,
        "expire_seconds": s.expire_seconds,
        "enabled": True,
        "one_off": False,
        "description": s.description,
    }


def stored(t: PeriodicTask) -> dict[str, object]:
    """A PeriodicTask row as the same fields."""
    if t.crontab is not None:
        c = t.crontab
        when = ("crontab", c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year)
        when += (str(c.timezone),)
    elif t.interval is not None:
        when = ("interval", t.interval.every, t.interval.period)
    else:
        when = ("solar" if t.solar_id else "clocked", t.solar_id or t.clocked_id)
    return {
        "task": t.task,
        "schedule": when,
        "args": t.args,
        "kwargs": t.kwargs,
        "expire_seconds": t.expire_seconds,
        "enabled": t.enabled,
        "one_off": t.one_off,
        "description": t.description,
    }


def test_migrated_database_when_compared_then_beat_schedule_equals_apps_ops_schedules():
    """Migrations carry literal copies of the schedules, so they and the module can drift
    apart: this test is what keeps them in step."""
    names = [s.name for s in SCHEDULES]
    assert len(names) == len(set(names)), "two schedules in apps/ops/schedules.py share a name"
    module = {s.name: declared(s) for s in SCHEDULES}
    database = {
        t.name: stored(t)
        for t in PeriodicTask.objects.select_related("crontab", "interval").order_by("name")
    }

    problems = [f"- only in apps/ops/schedules.py: {n!r}" for n in module.keys() - database.keys()]
    problems += [f"- only in the database: {n!r}" for n in database.keys() - module.keys()]
    for name in sorted(module.keys() & database.keys()):
        for field, want in module[name].items():
            got = database[name][field]
            if got != want:
                problems.append(f"- {name!r} {field}: module {want!r}, database {got!r}")
    assert not problems, (
        "the beat schedule of the migrated database differs from apps/ops/schedules.py:\n"
        + "\n".join(sorted(problems))
        + "\nadd a data migration (apps/ops/migrations) that makes this change in the database, "
        "with the schedule data written out in the migration and the models from "
        "apps.get_model(...); a migration never imports apps.*"
    )


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add("." * node.level + (node.module or ""))
    return found


def test_migrations_when_parsed_then_none_imports_project_code():
    """A migration that imports live code changes what it does when that code changes."""
    migrations = sorted(ROOT.glob("apps/*/migrations/[0-9]*.py"))
    assert migrations
    offending = {
        str(path.relative_to(ROOT)): sorted(
            m
            for m in imported_modules(path)
            if m.split(".")[0] in ("apps", "tradebot") or m.startswith(".")
        )
        for path in migrations
    }
    assert {path: mods for path, mods in offending.items() if mods} == {}


def test_schedules_when_declared_then_every_task_is_a_registered_celery_task():
    from tradebot.celery import app

    app.loader.import_default_modules()
    assert {s.task for s in SCHEDULES} - set(app.tasks) == set()


def test_migration_when_applied_then_every_schedule_stored_with_expiry_and_enabled():
    names = [s.name for s in MAINTENANCE_SCHEDULES] + [HEARTBEAT_NAME]
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__in=names)}
    assert set(tasks) == set(names)
    for t in tasks.values():
        assert t.enabled
        assert t.expire_seconds
        assert t.expire_seconds > 0
    assert {t.task for t in tasks.values()} == {
        "ops.backup",
        "ops.logs_rotate",
        "ops.vacuum",
        "ml.retrain",
        "ml.calibration_monitor",
        "ops.restore_test",
        "ops.stress_test",
        "ops.checklist",
        "ops.heartbeat",
    }
    kinds = sorted(
        json.loads(t.kwargs)["kind"] for t in tasks.values() if t.task == "ops.checklist"
    )
    assert kinds == ["post", "pre"]


def test_routes_when_ops_task_then_maintenance_queue():
    from tradebot.celery import app

    router = app.amqp.router
    for name in (
        "ops.backup",
        "ops.checklist",
        "ops.heartbeat",
        "ops.restore_test",
        "ops.stress_test",
    ):
        assert router.route({}, name)["queue"].name == CeleryQueue.MAINTENANCE.value
    assert settings.CELERY_TASK_ROUTES["ml.retrain"]["queue"] == CeleryQueue.ML.value


@pytest.mark.parametrize(
    ("prefix", "now", "expected"),
    [
        ("ops: backup", utc(2026, 3, 28, 23, 59, 30), utc(2026, 3, 29, 0, 0)),
        ("ops: backup", utc(2026, 10, 25, 0, 0, 30), utc(2026, 10, 26, 0, 0)),
        ("ops: log rotation", utc(2026, 3, 29, 0, 10), utc(2026, 3, 29, 0, 30)),
        ("ops: vacuum", utc(2026, 3, 25, 12, 0), utc(2026, 3, 29, 2, 0)),  # Wed -> Sunday
        ("ml: retrain", utc(2026, 2, 10, 0, 0), utc(2026, 4, 4, 3, 0)),  # 1st Sat of April
        ("ml: retrain", utc(2026, 4, 5, 0, 0), utc(2026, 7, 4, 3, 0)),  # 1st Sat of July
        ("ml: retrain", utc(2026, 7, 5, 0, 0), utc(2026, 10, 3, 3, 0)),
        ("ops: restore test", utc(2026, 3, 10, 0, 0), utc(2026, 4, 5, 4, 0)),  # 1st Sunday
        # stress test: first Saturday of the quarter, 12:00 UTC (after the 03:00 retrain)
        ("ops: stress test", utc(2026, 11, 24, 23, 0), utc(2027, 1, 2, 12, 0)),
        ("ops: stress test", utc(2027, 1, 2, 12, 30), utc(2027, 4, 3, 12, 0)),
        ("ops: stress test", utc(2027, 4, 3, 11, 0), utc(2027, 4, 3, 12, 0)),
        ("ops: stress test", utc(2027, 4, 4, 0, 0), utc(2027, 7, 3, 12, 0)),
        ("ops: stress test", utc(2027, 7, 4, 0, 0), utc(2027, 10, 2, 12, 0)),
    ],
)
def test_utc_schedules_when_now_fixed_then_next_run(prefix, now, expected):
    assert next_run(task_named(prefix), now) == expected


@pytest.mark.parametrize(
    ("prefix", "now", "expected_local"),
    [
        # spring forward: Sunday 2026-03-29 02:00 CET -> 03:00 CEST
        ("ops: pre-market", utc(2026, 3, 27, 12, 0), datetime(2026, 3, 28, 8, 0, tzinfo=MADRID)),
        ("ops: pre-market", utc(2026, 3, 28, 12, 0), datetime(2026, 3, 29, 8, 0, tzinfo=MADRID)),
        ("ops: pre-market", utc(2026, 3, 29, 1, 30), datetime(2026, 3, 29, 8, 0, tzinfo=MADRID)),
        ("ops: post-market", utc(2026, 3, 28, 18, 0), datetime(2026, 3, 29, 18, 30, tzinfo=MADRID)),
        # fall back: Sunday 2026-10-25 03:00 CEST -> 02:00 CET
        ("ops: pre-market", utc(2026, 10, 24, 12, 0), datetime(2026, 10, 25, 8, 0, tzinfo=MADRID)),
        ("ops: pre-market", utc(2026, 10, 25, 0, 30), datetime(2026, 10, 25, 8, 0, tzinfo=MADRID)),
        (
            "ops: post-market",
            utc(2026, 10, 24, 17, 0),
            datetime(2026, 10, 25, 18, 30, tzinfo=MADRID),
        ),
        (
            "ops: post-market",
            utc(2026, 10, 25, 17, 45),
            datetime(2026, 10, 26, 18, 30, tzinfo=MADRID),
        ),
    ],
)
def test_madrid_schedules_when_dst_changes_then_same_local_time(prefix, now, expected_local):
    # Act
    got = next_run(task_named(prefix), now)
    # Assert: the same wall-clock time in Madrid, so a different UTC hour across the change
    assert got == expected_local.astimezone(UTC)
    assert got.astimezone(MADRID).strftime("%H:%M") == expected_local.strftime("%H:%M")


def test_madrid_pre_market_when_dst_then_utc_hour_moves():
    task = task_named("ops: pre-market")
    winter = next_run(task, utc(2026, 3, 27, 12, 0))
    summer = next_run(task, utc(2026, 3, 29, 1, 0))
    back = next_run(task, utc(2026, 10, 25, 1, 0))
    assert (winter.hour, summer.hour, back.hour) == (7, 6, 7)


@pytest.mark.parametrize(
    "now",
    [utc(2026, 11, 24, 23, 0), utc(2027, 1, 3, 0, 0), utc(2027, 4, 4, 0, 0), utc(2027, 7, 4, 0, 0)],
)
def test_stress_test_schedule_when_next_run_then_a_saturday_with_nyse_closed(now):
    from apps.ops import health

    task = task_named("ops: stress test")
    when = next_run(task, now)

    assert when.weekday() == 5  # Saturday: the market-closed window of spec 7.1
    assert when.day <= 7
    assert when.month in (1, 4, 7, 10)
    assert not health.nyse_open(when)
    assert task.expire_seconds == 6 * 3600
    assert task.crontab.timezone.key == "UTC"
