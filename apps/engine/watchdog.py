"""The market-data watchdog: a silent feed alerts, then pauses trading; its return resumes it.

Freshness is per series (feed, instrument, timeframe: ``FeedStatus`` rows named
``feed:instrument:timeframe``). A series is late when no bar arrived for its timeframe
plus a grace; the spec's "no data > 5 min" (``DATA_FEED_STALE_SECONDS``) is counted from
there. As for a broker disconnect, the alert comes first (``DATA_FEED_ALERT_SECONDS``),
then PAUSE (``DATA_FEED_STALE_SECONDS``). Equity series are watched only during the US
regular session (09:30-16:00 America/New_York, Monday to Friday; exchange holidays are
not known here): a closed market is not a dead feed.

When every watched series is fresh again, the accounts that trade them are reconciled;
if all are clean and the last mode change is still this watchdog's PAUSE, the mode goes
back to what it was before (NORMAL or OBSERVATION). Any other mode change in between
(an operator, the kill switch) wins: then only a person resumes.

It runs in the engine's loop (every few seconds) and from Celery beat
(``engine.feeds_watch``), so a dead engine is noticed too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.brokers.models import ReconciliationOutcome, ReconciliationTrigger
from apps.brokers.services.reconcile import reconcile_account
from apps.engine.feeds.base import timeframe_delta
from apps.marketdata.models import AssetClass, FeedStatus, Instrument
from apps.notifications.models import Alert
from apps.notifications.services.alerts import alert_raise, alerts_resolve
from apps.notifications.services.notifications import notify_on_commit
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange, ModeSource
from apps.risk.services.modes import system_mode_get, system_mode_set

logger = logging.getLogger(__name__)

ACTOR_FEED_WATCHDOG = "feed-watchdog"
ALERT_FEED_STALE = "data_feed_stale:{series}"
_NEW_YORK = ZoneInfo("America/New_York")
_SESSION = (time(9, 30), time(16, 0))


@dataclass(frozen=True)
class WatchedSeries:
    instrument: str
    timeframe: str
    accounts: tuple[int, ...] = ()  # accounts whose plans trade it (reconciled on return)


@dataclass(frozen=True)
class SeriesAge:
    name: str  # feed:instrument:timeframe, or instrument:timeframe before its first bar
    late_by: float | None  # seconds past its due time (None: never had a bar)
    watched: bool  # False outside the market's session


def equity_session_open(now: datetime) -> bool:
    local = now.astimezone(_NEW_YORK)
    return local.weekday() < 5 and _SESSION[0] <= local.time() < _SESSION[1]


def _asset_classes(symbols: set[str]) -> dict[str, str]:
    return dict(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", "asset_class"))


def series_ages(series: list[WatchedSeries], now: datetime) -> list[SeriesAge]:
    """How late each series is: seconds since its last bar's wall time beyond one timeframe."""
    classes = _asset_classes({s.instrument for s in series})
    wanted = {(s.instrument, s.timeframe) for s in series}
    latest: dict[tuple[str, str], FeedStatus] = {}
    for status in FeedStatus.objects.filter(last_update__isnull=False):
        parts = status.feed.split(":")
        if len(parts) != 3 or (parts[1], parts[2]) not in wanted:
            continue
        key = (parts[1], parts[2])
        if key not in latest or status.last_update > latest[key].last_update:  # type: ignore[operator]
            latest[key] = status
    ages = []
    for s in sorted(series, key=lambda s: (s.instrument, s.timeframe)):
        watched = classes.get(s.instrument) != AssetClass.EQUITY or equity_session_open(now)
        found = latest.get((s.instrument, s.timeframe))
        if found is None or found.last_update is None:
            ages.append(SeriesAge(f"{s.instrument}:{s.timeframe}", None, watched))
            continue
        due = found.last_update + timeframe_delta(s.timeframe)
        ages.append(SeriesAge(found.feed, (now - due).total_seconds(), watched))
    return ages


def _watchdog_pause() -> ModeChange | None:
    """The last mode change, when it is this watchdog's PAUSE (else None)."""
    last = ModeChange.objects.order_by("-id").first()
    if last is not None and last.actor == ACTOR_FEED_WATCHDOG and last.to_mode == "pause":
        return last
    return None


def feeds_watch(
    *, series: list[WatchedSeries] | None = None, now: datetime | None = None
) -> list[SeriesAge]:
    """Alert on late series, PAUSE past the limit; resume after they are back and reconciled.

    ``series`` defaults to the series of the active trading plans. Series that never had a
    bar are not judged (the healthcheck reports them); returns what was measured.
    """
    now = now or timezone.now()
    if series is None:
        from apps.engine.selectors import plans_active

        accounts: dict[tuple[str, str], set[int]] = {}
        for plan in plans_active():
            accounts.setdefault((plan.instrument, plan.timeframe), set()).add(plan.account_id)
        series = [WatchedSeries(i, tf, tuple(sorted(a))) for (i, tf), a in accounts.items()]
    ages = series_ages(series, now)
    alert_after = settings.DATA_FEED_ALERT_SECONDS
    pause_after = settings.DATA_FEED_STALE_SECONDS
    late = [a for a in ages if a.watched and a.late_by is not None and a.late_by >= alert_after]
    for age in ages:
        code = ALERT_FEED_STALE.format(series=age.name)
        if age in late:
            with transaction.atomic():
                new = not Alert.objects.filter(code=code, resolved_at__isnull=True).exists()
                alert_raise(
                    severity="critical",
                    code=code,
                    message=f"no market data from {age.name} for {int(age.late_by or 0)} s "
                    f"past its bar; trading pauses after {pause_after} s",
                    data={"series": age.name, "late_by": int(age.late_by or 0)},
                )
                if new:
                    notify_on_commit(
                        severity="critical",
                        code="data_feed.stale",
                        title=f"Market data from {age.name} stopped",
                        body=f"no bar for {int(age.late_by or 0)} s past its due time; "
                        f"trading pauses after {pause_after} s",
                        dedup_key=f"feed-stale:{age.name}:{now:%Y%m%d%H%M%S}",
                        data={"series": age.name},
                    )
        elif age.late_by is not None and (age.late_by < alert_after or not age.watched):
            alerts_resolve(code)

    stale = [a for a in late if (a.late_by or 0) >= pause_after]
    mode = system_mode_get()
    if stale and mode in (SystemMode.NORMAL, SystemMode.OBSERVATION):
        names = ", ".join(f"{a.name} ({int(a.late_by or 0)} s)" for a in stale)
        system_mode_set(
            mode=SystemMode.PAUSE,
            actor=ACTOR_FEED_WATCHDOG,
            source=ModeSource.SYSTEM,
            reason=f"market data stale: {names}",
        )
        logger.error("market data stale, trading paused: %s", names)
    elif not late and mode is SystemMode.PAUSE:
        paused = _watchdog_pause()
        if paused is not None:
            _resume(paused, series)
    return ages


def _resume(paused: ModeChange, series: list[WatchedSeries]) -> None:
    """Reconcile the accounts of the watched series; resume the previous mode if all clean."""
    account_ids = sorted({a for s in series for a in s.accounts})
    for account in Account.objects.filter(pk__in=account_ids):
        run = reconcile_account(account=account, trigger=ReconciliationTrigger.RECONNECT)
        if run.outcome != ReconciliationOutcome.CLEAN:
            logger.warning(
                "market data back, but reconciliation #%s of %s is %s: staying paused",
                run.pk,
                account.name,
                run.outcome,
            )
            return
    previous = SystemMode(paused.from_mode)
    if previous not in (SystemMode.NORMAL, SystemMode.OBSERVATION):
        return
    system_mode_set(
        mode=previous,
        actor=ACTOR_FEED_WATCHDOG,
        source=ModeSource.SYSTEM,
        reason="market data back and reconciliation clean",
    )
    logger.info("market data back, reconciliation clean: trading resumes in %s", previous)
