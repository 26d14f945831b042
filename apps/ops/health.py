"""Read-only checks: the startup runbook's (6.1) and the pre-deploy checklist's (3.3).

Each check answers ok, warn or fail with one line of detail. ``fail`` makes the
healthcheck / predeploy_check commands exit 1 and /health/ready answer 503.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.brokers.selectors import broker_sessions
from apps.core.queues import CeleryQueue
from apps.marketdata.models import AssetClass, FeedStatus, Instrument
from apps.notifications.models import Alert
from apps.risk.domain.modes import SystemMode
from apps.risk.models import SystemState
from apps.risk.services.modes import system_mode_get, system_state_get

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a check reports, it never crashes the probe
        return Check(name, FAIL, f"{exc.__class__.__name__}: {exc}"[:300])


# --- startup checks (runbook 6.1) ---------------------------------------------------------


def check_database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Check("database", OK, f"{connection.settings_dict['NAME']} answers")


def check_redis() -> Check:
    from django.core.cache import cache

    cache.set("ops:health", "1", 5)
    if cache.get("ops:health") != "1":
        return Check("redis", FAIL, "no round trip through the cache")
    return Check("redis", OK, "cache round trip")


def check_broker() -> Check:
    """Every account's broker session: connected and heartbeating (the paper broker always is)."""
    rows = broker_sessions()
    if not rows:
        return Check("broker", OK, "no accounts yet")
    down = [r for r in rows if r["state"] != "connected"]
    stale = [r for r in rows if r["state"] == "connected" and not r["up"]]
    summary = ", ".join(f"{r['account']} ({r['broker']}): {r['state']}" for r in rows)
    if down:
        errors = "; ".join(f"{r['account']}: {r['last_error'] or r['state']}" for r in down)
        return Check("broker", FAIL, f"disconnected: {errors}"[:300])
    if stale:
        names = ", ".join(r["account"] for r in stale)
        return Check(
            "broker",
            FAIL,
            f"no heartbeat from the execution worker for {names}: is worker-execution running?",
        )
    return Check("broker", OK, summary[:300])


def check_data_feed(now: datetime) -> Check:
    limit = settings.DATA_FEED_STALE_SECONDS
    feeds = list(FeedStatus.objects.order_by("feed"))
    if not feeds:
        return Check("data_feed", FAIL, "no feed has reported a bar yet")
    stale, fresh = [], []
    for f in feeds:
        age = None if f.last_update is None else (now - f.last_update).total_seconds()
        if age is None or age > limit:
            stale.append(f"{f.feed} ({'never' if age is None else f'{age:.0f} s ago'})")
        else:
            fresh.append(f"{f.feed} ({age:.0f} s ago)")
    if stale:
        return Check("data_feed", FAIL, f"stale (> {limit} s): {', '.join(stale)}")
    return Check("data_feed", OK, f"fresh: {', '.join(fresh)}")


def check_mode() -> Check:
    mode = system_mode_get()
    if mode in (SystemMode.NORMAL, SystemMode.OBSERVATION):
        return Check("mode", OK, mode.value.upper())
    return Check("mode", FAIL, f"{mode.value.upper()}: must be NORMAL or OBSERVATION to trade")


def celery_ping(timeout: float) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(ping replies, active queues) of the Celery workers, by broadcast with a timeout."""
    from tradebot.celery import app

    inspect = app.control.inspect(timeout=timeout)
    return inspect.ping(), inspect.active_queues()


def check_workers(ping: Callable[[float], tuple[Any, Any]] | None = None) -> Check:
    replies, queues = (ping or celery_ping)(settings.CELERY_PING_TIMEOUT_SECONDS)
    if not replies:
        return Check("workers", FAIL, "no Celery worker answered the ping")
    served = {q["name"] for qs in (queues or {}).values() for q in qs}
    missing = sorted(q.value for q in CeleryQueue if q.value not in served)
    names = ", ".join(sorted(replies))
    if missing:
        return Check("workers", WARN, f"{names}; no worker consumes: {', '.join(missing)}")
    return Check("workers", OK, f"{names}; every queue consumed")


def check_beat(now: datetime) -> Check:
    from django.core.cache import cache
    from django_celery_beat.models import PeriodicTask

    from apps.ops.schedules import HEARTBEAT_NAME
    from apps.ops.services.maintenance import HEARTBEAT_KEY

    limit = settings.BEAT_HEARTBEAT_MAX_AGE_SECONDS
    beat_ts = cache.get(HEARTBEAT_KEY)
    if beat_ts is not None and now.timestamp() - float(beat_ts) <= limit:
        return Check("beat", OK, f"heartbeat {now.timestamp() - float(beat_ts):.0f} s ago")
    task = PeriodicTask.objects.filter(name=HEARTBEAT_NAME).first()
    if task is None or not task.enabled:
        return Check(
            "beat", FAIL, f"the heartbeat schedule {HEARTBEAT_NAME!r} is missing or disabled"
        )
    if task.last_run_at and (now - task.last_run_at).total_seconds() <= limit:
        return Check(
            "beat",
            WARN,
            "beat sends the heartbeat but no worker ran it: is the maintenance worker up?",
        )
    return Check("beat", FAIL, f"no heartbeat for more than {limit} s: is celery beat running?")


def health_checks(
    *, now: datetime | None = None, ping: Callable[[float], tuple[Any, Any]] | None = None
) -> list[Check]:
    now = now or timezone.now()
    db = _guard("database", check_database)
    checks = [db, _guard("redis", check_redis)]
    if db.status == FAIL:
        names = ("broker", "data_feed", "mode")
        checks += [Check(n, FAIL, "database unavailable") for n in names]
    else:
        checks += [
            _guard("broker", check_broker),
            _guard("data_feed", lambda: check_data_feed(now)),
            _guard("mode", check_mode),
        ]
    checks.append(_guard("workers", lambda: check_workers(ping)))
    checks.append(_guard("beat", lambda: check_beat(now)))
    return checks


def overall(checks: list[Check]) -> str:
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else (WARN if WARN in statuses else OK)


# --- pre-deploy checklist (spec 3.3) -----------------------------------------------------

NYSE = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class NyseDay:
    """The NYSE (XNYS) calendar for one New York date: its session, if any."""

    date: date
    is_session: bool
    open_utc: datetime | None = None
    close_utc: datetime | None = None
    early_close: bool = False
    reason: str = ""  # "weekend", "holiday" or ""


@functools.lru_cache(maxsize=4)
def _xnys(year: int) -> Any:
    import exchange_calendars as xcals

    # A calendar per year around the date asked (the default one only spans a year or
    # so around today): holidays, observed holidays and early closes by exchange_calendars.
    return xcals.get_calendar("XNYS", start=f"{year - 1}-12-01", end=f"{year + 1}-01-31")


def nyse_day(day: date) -> NyseDay:
    """NYSE's session on ``day`` (a New York date): regular 09:30-16:00, 13:00 on early closes."""
    import pandas as pd

    if day.weekday() >= 5:
        return NyseDay(day, False, reason="weekend")
    label = pd.Timestamp(day)
    # exchange_calendars' pandas 3 deprecation warnings are its business, not the operator's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cal = _xnys(day.year)
        if not cal.is_session(label):
            return NyseDay(day, False, reason="holiday")
        open_ = cal.session_open(label).to_pydatetime()
        close = cal.session_close(label).to_pydatetime()
    early = close.astimezone(NYSE).time() < time(16, 0)
    return NyseDay(day, True, open_.astimezone(UTC), close.astimezone(UTC), early)


def nyse_open(now: datetime) -> bool:
    """NYSE regular session at ``now``: weekdays 09:30-16:00 New York, except the exchange's
    holidays (observed ones included) and with the 13:00 early closes."""
    d = nyse_day(now.astimezone(NYSE).date())
    return bool(d.is_session and d.open_utc <= now < d.close_utc)


def nyse_status(now: datetime) -> str:
    """One line on the NYSE at ``now``: open until when, or closed and why."""
    local = now.astimezone(NYSE)
    d = nyse_day(local.date())
    if not d.is_session:
        return f"NYSE closed ({d.reason}, {d.date:%a %Y-%m-%d})"
    close_local = d.close_utc.astimezone(NYSE)
    early = " (early close)" if d.early_close else ""
    if d.open_utc <= now < d.close_utc:
        return f"NYSE is open until {close_local:%H:%M} New York{early}"
    when = "before the open" if now < d.open_utc else f"after the {close_local:%H:%M} close{early}"
    return f"NYSE closed ({when}, {d.date:%a %Y-%m-%d})"


def check_ci() -> Check:
    raw = settings.CI_LAST_RESULT.strip()
    source = "CI_LAST_RESULT"
    if not raw:
        path = Path(settings.CI_RESULT_FILE)
        source = str(path)
        try:
            raw = path.read_text().strip()
        except OSError:
            return Check(
                "ci",
                FAIL,
                f"no CI result: set CI_LAST_RESULT=success (the workflow's test job result) "
                f"or write it to {path}",
            )
    first = raw.split()[0].lower() if raw else ""
    if first in ("success", "passed", "ok"):
        return Check("ci", OK, f"{source}: {raw[:120]}")
    return Check("ci", FAIL, f"{source}: {raw[:120]}")


def check_critical_alerts(now: datetime) -> Check:
    recent = Alert.objects.filter(severity="critical", created_at__gte=now - timedelta(hours=24))
    count = recent.count()
    if count:
        codes = ", ".join(sorted({a.code for a in recent[:20]}))
        return Check("critical_alerts", FAIL, f"{count} critical alert(s) in 24 h: {codes}")
    return Check("critical_alerts", OK, "no critical alert in 24 h")


def check_backup_recent(now: datetime, *, max_age: timedelta = timedelta(hours=24)) -> Check:
    from apps.ops.services.maintenance import maintenance_last_success

    last = maintenance_last_success(task="backup")
    if last is None or last.finished_at is None:
        return Check("backup", FAIL, "no successful backup recorded: run `manage.py backup`")
    age = now - last.finished_at
    hours = age.total_seconds() / 3600
    if age > max_age:
        return Check("backup", FAIL, f"last successful backup {hours:.1f} h ago (> 24 h)")
    return Check("backup", OK, f"last successful backup {hours:.1f} h ago")


def check_markets(now: datetime) -> Check:
    notes = []
    status = OK
    if nyse_open(now):
        status = WARN
        notes.append(f"{nyse_status(now)}: deploy when it is closed if you can")
    else:
        notes.append(nyse_status(now))
    if Instrument.objects.filter(active=True, asset_class=AssetClass.CRYPTO).exists():
        status = WARN
        notes.append("crypto markets never close: positions stay exposed during the deploy")
    return Check("markets", status, "; ".join(notes))


def check_kill_switch() -> Check:
    """The kill switch can latch: the mode row exists and nothing holds its lock."""
    system_state_get()
    try:
        with transaction.atomic():
            SystemState.objects.select_for_update(nowait=True).get(pk=1)
            transaction.set_rollback(True)
    except DatabaseError as exc:
        return Check("kill_switch", FAIL, f"the mode row cannot be locked: {exc}"[:300])
    return Check("kill_switch", OK, "mode row lockable")


def predeploy_checks(*, now: datetime | None = None) -> list[Check]:
    now = now or timezone.now()
    return [
        _guard("ci", check_ci),
        _guard("critical_alerts", lambda: check_critical_alerts(now)),
        _guard("backup", lambda: check_backup_recent(now)),
        _guard("markets", lambda: check_markets(now)),
        _guard("kill_switch", check_kill_switch),
    ]
