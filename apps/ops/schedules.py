"""Every Celery beat schedule of Tradebot, in one place (spec 7.1, 8.3, 10).

ops is the top non-interface layer, so it names every app's tasks by their Celery
names (plain strings: nothing here imports another app). django-celery-beat stores
the schedules in the database (the admin's "Periodic tasks" edits them). Each has an
expiry so that a beat or a worker that was down does not fire a backlog of stale runs
when it comes back. Times are in the zone named, so 08:00 Europe/Madrid stays 08:00 in
Madrid across the DST changes.

Celery's crontab matches day_of_week AND day_of_month (not cron's OR), so
"day_of_week=6, day_of_month=1-7" is the first Saturday of the month.

Data migrations write these rows, and each carries its own literal copy of the data it
installs (a migration never imports this module, so editing it never changes what an
old migration does). So: when you add, remove or change a schedule here, also add a
data migration in apps/ops/migrations that makes the same change with literal data and
``apps.get_model(...)``. tests/ops/test_schedules.py compares the migrated database
with SCHEDULES and fails until that migration exists.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Crontab:
    """A periodic task on a crontab in ``timezone``."""

    name: str
    task: str
    minute: str
    hour: str
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    timezone: str = "UTC"
    expire_seconds: int = 3600
    kwargs: str = "{}"
    description: str = ""


@dataclass(frozen=True)
class Interval:
    """A periodic task every ``every_seconds`` seconds."""

    name: str
    task: str
    every_seconds: int
    expire_seconds: int
    description: str = ""
    kwargs: str = "{}"


# --- ops and ml: the maintenance calendar ----------------------------------------------

HEARTBEAT_TASK = "ops.heartbeat"
HEARTBEAT_NAME = "ops: beat heartbeat"
HEARTBEAT_EVERY_SECONDS = 60

MAINTENANCE_SCHEDULES: tuple[Crontab, ...] = (
    Crontab(
        "ops: backup (daily 00:00 UTC)",
        "ops.backup",
        "0",
        "0",
        expire_seconds=3 * 3600,
        description="pg_dump + Redis RDB + manifest; retention 30 d PostgreSQL / 7 d Redis (spec 7.1, 8.1)",
    ),
    Crontab(
        "ops: log rotation (daily 00:30 UTC)",
        "ops.logs_rotate",
        "30",
        "0",
        expire_seconds=3600,
        description="rotate stale log files, delete those older than 90 days (spec 7.1, 8.1)",
    ),
    Crontab(
        "ops: vacuum (Sunday 02:00 UTC)",
        "ops.vacuum",
        "0",
        "2",
        day_of_week="0",
        expire_seconds=3 * 3600,
        description="VACUUM (ANALYZE) of the database (spec 7.1)",
    ),
    Crontab(
        "ml: retrain (quarterly, first Saturday of Jan/Apr/Jul/Oct 03:00 UTC)",
        "ml.retrain",
        "0",
        "3",
        day_of_week="6",
        day_of_month="1-7",
        month_of_year="1,4,7,10",
        expire_seconds=12 * 3600,
        description="quarterly model retrain on a weekend (spec 7.1; task owned by apps.ml)",
    ),
    Crontab(
        "ml: calibration monitor (every 5 min)",
        "ml.calibration_monitor",
        "*/5",
        "*",
        expire_seconds=240,
        description="resolve predictions, live ECE and feature drift; > 0.15 moves ML to observation",
    ),
    Crontab(
        "ops: restore test (monthly, first Sunday 04:00 UTC)",
        "ops.restore_test",
        "0",
        "4",
        day_of_week="0",
        day_of_month="1-7",
        expire_seconds=12 * 3600,
        description="restore the newest backup into a throwaway database and verify it (spec 8.3)",
    ),
    Crontab(
        "ops: stress test (quarterly, first Saturday of Jan/Apr/Jul/Oct 12:00 UTC)",
        "ops.stress_test",
        "0",
        "12",
        day_of_week="6",
        day_of_month="1-7",
        month_of_year="1,4,7,10",
        expire_seconds=6 * 3600,
        description="stress scenarios against the live book and its limits, markets closed "
        "(spec 7.1: quarterly, 2 h); after the 03:00 retrain of the same Saturday",
    ),
    Crontab(
        "ops: pre-market checklist (08:00 Europe/Madrid)",
        "ops.checklist",
        "0",
        "8",
        timezone="Europe/Madrid",
        expire_seconds=1800,
        kwargs='{"kind": "pre"}',
        description="daily pre-market checklist (spec 10.1)",
    ),
    Crontab(
        "ops: post-market checklist (18:30 Europe/Madrid)",
        "ops.checklist",
        "30",
        "18",
        timezone="Europe/Madrid",
        expire_seconds=1800,
        kwargs='{"kind": "post"}',
        description="daily post-market checklist (spec 10.3)",
    ),
)

HEARTBEAT = Interval(
    HEARTBEAT_NAME,
    HEARTBEAT_TASK,
    HEARTBEAT_EVERY_SECONDS,
    HEARTBEAT_EVERY_SECONDS - 10,
    "proves beat and the maintenance worker alive (manage.py healthcheck)",
)

# --- brokers ------------------------------------------------------------------------------

BROKER_SCHEDULES: tuple[Interval, ...] = (
    Interval(
        "brokers: sync (heartbeat, fills, in-flight orders; every 5 s)",
        "brokers.sync",
        5,
        4,
        "heartbeat and reconnect with backoff; alert after 2 min, PAUSE after the grace period",
    ),
    Interval(
        "brokers: reconcile (every minute)",
        "brokers.reconcile",
        60,
        50,
        "positions, open orders, fills and cash against the broker; a discrepancy pauses trading",
    ),
    Interval(
        "brokers: order outbox sweep (every 15 s)",
        "brokers.outbox_sweep",
        15,
        10,
        "re-enqueue orders whose enqueue was lost; deny stale ones",
    ),
)
# --- market data ----------------------------------------------------------------------------

FEED_WATCH = Interval(
    "engine: market-data watchdog (every 15 s)",
    "engine.feeds_watch",
    15,
    10,
    "alert when a traded series has no bar 2 min past due, PAUSE after 5 min; "
    "resume after it is back and reconciliation is clean",
)

# After the US close (16:00 New York): one more reconciliation of the day's books.
AFTER_CLOSE = Crontab(
    "brokers: reconcile after the close (16:15 America/New_York, Mon-Fri)",
    "brokers.reconcile",
    "15",
    "16",
    day_of_week="1-5",
    timezone="America/New_York",
    expire_seconds=3600,
    kwargs='{"trigger": "schedule"}',
    description="end-of-day reconciliation after the US close",
)

# --- notifications ------------------------------------------------------------------------

NOTIFICATION_SCHEDULES: tuple[Interval, ...] = (
    Interval(
        "notifications: sweep stuck deliveries (every 60 s)",
        "notifications.sweep",
        60,
        50,
        "re-queue deliveries left pending (broker down) or sending (worker died)",
    ),
    Interval(
        "notifications: Alertmanager watchdog check (every 60 s)",
        "notifications.watchdog_check",
        60,
        50,
        "critical alert when the Watchdog is older than ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS",
    ),
)

# --- all of them: what the migrated database holds -----------------------------------------

SCHEDULES: tuple[Crontab | Interval, ...] = (
    *MAINTENANCE_SCHEDULES,
    HEARTBEAT,
    *BROKER_SCHEDULES,
    AFTER_CLOSE,
    *NOTIFICATION_SCHEDULES,
    FEED_WATCH,
)
