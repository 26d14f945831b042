"""Alertmanager's Watchdog: each delivery recorded, and a critical alert when it goes stale."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.notifications.domain.alertmanager import WebhookMessage
from apps.notifications.domain.routing import (
    Severity,
)
from apps.notifications.models import (
    WatchdogHeartbeat,
)
from apps.notifications.services.alerts import alert_raise, alerts_resolve
from apps.notifications.services.notifications import notify

WATCHDOG_ALERT_CODE = "alertmanager_watchdog_stale"


def watchdog_beat(*, message: WebhookMessage) -> WatchdogHeartbeat:
    """Record a Watchdog delivery: the alerting pipeline (Prometheus -> Alertmanager) works."""
    now = timezone.now()
    with transaction.atomic():
        beat, _ = WatchdogHeartbeat.objects.select_for_update().get_or_create(pk=1)
        beat.last_seen_at = now
        beat.receiver = message.receiver[:128]
        beat.beats += 1
        beat.save()
    alerts_resolve(WATCHDOG_ALERT_CODE)
    return beat


def watchdog_check(*, now: datetime | None = None) -> float | None:
    """Raise a critical alert and notification when the Watchdog is older than
    ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS (0: off); returns the age in seconds, or None
    when off. Never seen counts from the first check, so a fresh install is not stale.

    The notification goes out through the app's own channels (Alertmanager is the thing
    that is silent); one per alert episode, repeated after the dedup window.
    """
    max_age = settings.ALERTMANAGER_WATCHDOG_MAX_AGE_SECONDS
    if not max_age:
        return None
    now = now or timezone.now()
    beat, _ = WatchdogHeartbeat.objects.get_or_create(pk=1)
    since = beat.last_seen_at or beat.created_at
    age = (now - since).total_seconds()
    if age <= max_age:
        return age
    seen = (
        f"last seen {beat.last_seen_at:%Y-%m-%d %H:%M:%S} UTC"
        if beat.last_seen_at
        else "never seen"
    )
    message = (
        f"No Watchdog from Alertmanager for {age / 60:.0f} min ({seen}): Prometheus or "
        "Alertmanager is down, or cannot reach the app. Alerts are NOT being delivered."
    )
    alert = alert_raise(
        severity="critical",
        code=WATCHDOG_ALERT_CODE,
        message=message,
        data={"age_seconds": round(age), "max_age_seconds": max_age},
    )
    notify(
        severity=Severity.CRITICAL,
        code="alertmanager.watchdog_stale",
        title="Alerting pipeline silent",
        body=message,
        dedup_key=f"watchdog-stale:{alert.pk}",
        data={"age_seconds": round(age), "alert": alert.pk},
    )
    return age
