"""Connectivity: heartbeat, reconnect with backoff and jitter, alert, pause, reconcile after a reconnect."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.accounts.models import Account
from apps.brokers.domain.backoff import backoff_delay
from apps.brokers.models import (
    BrokerSession,
    ReconciliationOutcome,
    ReconciliationTrigger,
)
from apps.brokers.services.common import ACTOR_WATCHDOG, ALERT_DISCONNECTED, session_for
from apps.brokers.services.reconcile import reconcile_account
from apps.brokers.services.settling import fills_sync, in_flight_settle
from apps.model.venues import (
    ConnectionState,
    VenueError,
)
from apps.notifications.models import Alert
from apps.notifications.services.alerts import alert_raise, alert_resolve
from apps.notifications.services.notifications import notify_on_commit
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange, ModeSource
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.services.common import venue_for

logger = logging.getLogger(__name__)


# --- connectivity -------------------------------------------------------------------------


def _disconnected(account: Account, session: BrokerSession, error: str, now: datetime) -> None:
    first = session.disconnected_since is None or session.state == ConnectionState.CONNECTED
    if first:
        session.disconnected_since = now
        logger.error("broker %s of %s disconnected: %s", account.broker, account.name, error)
    session.state = ConnectionState.DISCONNECTED
    session.connected_since = None
    session.last_error = error[:2000]
    delay = backoff_delay(
        session.reconnect_attempts,
        base=settings.BROKER_BACKOFF_BASE_SECONDS,
        cap=settings.BROKER_BACKOFF_MAX_SECONDS,
    )
    session.reconnect_attempts += 1
    session.next_attempt_at = now + timedelta(seconds=delay)
    down_for = (now - session.disconnected_since).total_seconds()
    if down_for >= settings.BROKER_DISCONNECT_ALERT_SECONDS and not session.alerted:
        notify_on_commit(
            severity="critical",
            code="broker.disconnected",
            title=f"Broker {account.broker} of {account.name} disconnected",
            body=f"down for {int(down_for)} s: {error}; trading pauses after "
            f"{settings.BROKER_DISCONNECT_PAUSE_SECONDS} s",
            dedup_key=f"broker-disconnected:{account.pk}:{session.disconnected_since:%Y%m%d%H%M%S}",
            data={"account": account.name, "broker": account.broker},
        )
        alert_raise(
            severity="critical",
            code=ALERT_DISCONNECTED.format(account=account.name),
            message=f"broker {account.broker} of {account.name} disconnected for "
            f"{int(down_for)} s: {error}",
            data={"account": account.name, "broker": account.broker},
        )
        session.alerted = True
    if (
        down_for >= settings.BROKER_DISCONNECT_PAUSE_SECONDS
        and not session.paused_trading
        and system_mode_get() in (SystemMode.NORMAL, SystemMode.OBSERVATION)
    ):
        system_mode_set(
            mode=SystemMode.PAUSE,
            actor=ACTOR_WATCHDOG,
            source=ModeSource.SYSTEM,
            reason=f"broker {account.broker} of {account.name} disconnected for {int(down_for)} s",
        )
        session.paused_trading = True
    session.save()


def _reconnected(account: Account, session: BrokerSession, now: datetime) -> None:
    """After a reconnect: executions re-requested and reconciled before trading resumes."""
    logger.info("broker %s of %s reconnected; reconciling", account.broker, account.name)
    down_since = session.disconnected_since
    session.state = ConnectionState.CONNECTED
    session.connected_since = now
    session.disconnected_since = None
    session.reconnect_attempts = 0
    session.next_attempt_at = None
    session.last_heartbeat_at = now
    session.save()
    run = reconcile_account(account=account, trigger=ReconciliationTrigger.RECONNECT)
    if run.outcome == ReconciliationOutcome.ERROR:
        # Connected, but the books cannot be re-read: not usable yet, keep backing off.
        session.state = ConnectionState.DISCONNECTED
        session.disconnected_since = down_since or now
        _disconnected(account, session, f"reconciliation after reconnect failed: {run.error}", now)
        return
    for alert in Alert.objects.filter(
        code=ALERT_DISCONNECTED.format(account=account.name), resolved_at__isnull=True
    ):
        alert_resolve(alert_id=alert.pk, actor=ACTOR_WATCHDOG)
    session.alerted = False
    if session.paused_trading and run.outcome == ReconciliationOutcome.CLEAN:
        last = ModeChange.objects.order_by("-id").first()
        if (
            system_mode_get() is SystemMode.PAUSE
            and last is not None
            and last.actor == ACTOR_WATCHDOG
        ):
            system_mode_set(
                mode=SystemMode.NORMAL,
                actor=ACTOR_WATCHDOG,
                source=ModeSource.SYSTEM,
                reason=f"broker back and reconciliation #{run.pk} clean",
            )
        session.paused_trading = False
    session.save()


def broker_sync(*, account: Account, now: datetime | None = None) -> BrokerSession:
    """One heartbeat of ``account``'s broker session (run every few seconds by beat)."""
    now = now or timezone.now()
    session = session_for(account)
    if (
        session.state != ConnectionState.CONNECTED
        and session.next_attempt_at is not None
        and now < session.next_attempt_at
    ):
        # Still backing off; the clock of the disconnection keeps running for the alert.
        if session.disconnected_since is not None:
            _escalate_only(account, session, now)
        return session
    try:
        venue = venue_for(account)
        if venue.connection_state() != ConnectionState.CONNECTED:
            venue.connect()
        venue.heartbeat()
    except VenueError as exc:
        _disconnected(account, session, f"{type(exc).__name__}: {exc}", now)
        return session
    if session.disconnected_since is not None or session.state != ConnectionState.CONNECTED:
        _reconnected(account, session, now)
        return session
    session.last_heartbeat_at = now
    session.save(update_fields=["last_heartbeat_at", "updated_at"])
    try:
        fills_sync(account, venue, session)
        in_flight_settle(
            account, venue, older_than=timedelta(seconds=settings.ORDER_IN_FLIGHT_QUERY_SECONDS)
        )
    except VenueError as exc:
        _disconnected(account, session, f"{type(exc).__name__}: {exc}", now)
    return session


def _escalate_only(account: Account, session: BrokerSession, now: datetime) -> None:
    """During backoff: only the alert and PAUSE clocks move (no connection attempt)."""
    attempts, next_at = session.reconnect_attempts, session.next_attempt_at
    _disconnected(account, session, session.last_error, now)
    session.reconnect_attempts, session.next_attempt_at = attempts, next_at
    session.save(update_fields=["reconnect_attempts", "next_attempt_at"])
