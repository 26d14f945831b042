"""Notification writes: notify(), delivering one delivery, the alerts (raise, resolve), the
channels' health, the Alertmanager webhooks and the Watchdog check.

Shape of a notification's life:

1. ``notify(...)`` stores a Notification and one Delivery per channel of its severity
   (table 5.1: info none, warning Telegram, error + e-mail, critical + SMS), in the
   caller's transaction; a repeat of the same ``dedup_key`` inside the dedup window only
   bumps the first one's ``occurrences``. A channel without settings gets a "skipped"
   delivery saying what to set.
2. After commit, each pending delivery is handed to the Celery task
   ``notifications.deliver`` (queue "default"). If the broker is unreachable the delivery
   stays "pending" and ``notifications.sweep`` (beat, every minute) hands it over later.
   Nothing here ever raises into the caller because a channel or the broker failed.
3. ``delivery_send`` claims the delivery, checks the channel (configured, not disabled,
   under its rate limit) and sends it. Temporary failures are retried with exponential
   backoff; bad credentials disable the channel (reported once); anything else fails it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.exceptions import ApplicationError
from apps.core.realtime import GROUP_PANEL, broadcast
from apps.notifications import channels as ch
from apps.notifications.domain.alertmanager import WebhookMessage
from apps.notifications.domain.errors import (
    CredentialsFailure,
    DeliveryFailure,
    NotConfigured,
    PermanentFailure,
)
from apps.notifications.domain.routing import (
    Channel,
    RateLimit,
    RoutingError,
    Severity,
    channels_for,
    severity_of,
    truncate,
)
from apps.notifications.exceptions import AlertInvalid
from apps.notifications.models import (
    OPEN_STATUSES,
    Alert,
    AlertSeverity,
    ChannelState,
    Delivery,
    DeliveryStatus,
    Notification,
    WatchdogHeartbeat,
)

logger = logging.getLogger(__name__)

ACTOR = "system:notifications"
TITLE_MAX = 200
CODE_MAX = 96
# A delivery left "pending" this long (broker down at enqueue time), or "sending" this
# long (a worker died mid-send), is handed to a task again by the sweeper.
PENDING_GRACE = timedelta(seconds=60)
SENDING_STALE = timedelta(minutes=10)
WATCHDOG_ALERT_CODE = "alertmanager_watchdog_stale"


class NotificationInvalid(ApplicationError):
    code = "notification_invalid"


# --- notify ----------------------------------------------------------------------------------


def notify(
    *,
    severity: str,
    code: str,
    title: str,
    body: str,
    dedup_key: str | None = None,
    data: dict[str, Any] | None = None,
) -> Notification:
    """Record a notification and deliver it by severity (table 5.1), after commit.

    ``dedup_key``: the same key inside NOTIFY_DEDUP_WINDOW_SECONDS is the same
    notification (returned, its ``occurrences`` bumped, nothing sent again). Delivery
    happens in Celery tasks after the caller's transaction commits; a failing channel
    never raises here.

    Raises
    ------
    NotificationInvalid
        Unknown severity, empty code or title. Nothing is stored.
    """
    try:
        level = severity_of(severity)
    except RoutingError as exc:
        raise NotificationInvalid(str(exc), field="severity") from None
    notification, _ = _notify(
        severity=level,
        code=code,
        title=title,
        body=body,
        dedup_key=dedup_key,
        data=data,
        channels=channels_for(level),
    )
    return notification


def notify_on_commit(**kwargs: Any) -> None:
    """``notify(**kwargs)`` once the caller's transaction commits (at once outside one).

    robust: a notification that fails is logged and never undoes or blocks what the
    caller did (a fill, a rejection, a reconciliation).
    """
    transaction.on_commit(lambda: notify(**kwargs), robust=True)


def _lock_key(dedup_key: str) -> int:
    """A signed 64-bit advisory lock id for a dedup key."""
    return int.from_bytes(hashlib.sha256(dedup_key.encode()).digest()[:8], "big", signed=True)


def _notify(
    *,
    severity: Severity,
    code: str,
    title: str,
    body: str,
    dedup_key: str | None,
    data: dict[str, Any] | None,
    channels: Iterable[Channel],
) -> tuple[Notification, bool]:
    """Store (or deduplicate) a notification for ``channels``; returns it and whether new."""
    code = (code or "").strip()
    title = (title or "").strip()
    if not code:
        raise NotificationInvalid("code is required (e.g. kill_switch)", field="code")
    if not title:
        raise NotificationInvalid("title is required: say what happened", field="title")
    if len(code) > CODE_MAX:
        raise NotificationInvalid(f"code is too long (max {CODE_MAX} characters)", field="code")
    dedup_key = (dedup_key or "").strip()[:200]
    now = timezone.now()
    with transaction.atomic():
        if dedup_key:
            # Serialises notify() calls with the same key across processes: the second
            # waits for the first's commit, then finds it.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(dedup_key)])
            window = timedelta(seconds=settings.NOTIFY_DEDUP_WINDOW_SECONDS)
            existing = (
                Notification.objects.filter(dedup_key=dedup_key, created_at__gte=now - window)
                .order_by("-created_at", "-id")
                .first()
            )
            if existing is not None:
                Notification.objects.filter(pk=existing.pk).update(
                    occurrences=F("occurrences") + 1, last_occurred_at=now
                )
                existing.refresh_from_db(fields=["occurrences", "last_occurred_at"])
                logger.info(
                    "notification %s %s deduplicated (%s, x%s)",
                    severity,
                    code,
                    dedup_key,
                    existing.occurrences,
                )
                return existing, False
        notification = Notification.objects.create(
            severity=severity.value,
            code=code,
            title=truncate(title, TITLE_MAX),
            body=body or "",
            dedup_key=dedup_key,
            data=dict(data or {}),
        )
        pending: list[int] = []
        for channel in channels:
            reason = ch.configured(channel)
            delivery = Delivery.objects.create(
                notification=notification,
                channel=channel.value,
                status=DeliveryStatus.SKIPPED if reason else DeliveryStatus.PENDING,
                last_error=reason,
            )
            if not reason:
                pending.append(delivery.pk)
        if pending:
            transaction.on_commit(lambda: deliveries_enqueue(pending), robust=True)
    level = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING}.get(
        severity, logging.ERROR
    )
    logger.log(level, "notification %s %s: %s", severity, code, title)
    return notification, True


def deliveries_enqueue(delivery_ids: Iterable[int]) -> int:
    """Hand deliveries to the ``notifications.deliver`` task; returns how many were queued.

    A broker that is down is logged, never raised: the deliveries stay "pending" and the
    sweeper hands them over once it is back.
    """
    from apps.notifications.tasks import deliver

    queued = 0
    for delivery_id in delivery_ids:
        try:
            deliver.apply_async(args=[delivery_id])
            queued += 1
        except Exception:  # noqa: BLE001 - the broker being down must not reach the caller
            logger.warning(
                "notifications: could not queue delivery %s (left pending for the sweeper)",
                delivery_id,
                exc_info=True,
            )
    return queued


# --- delivering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    """What one delivery attempt did; ``retry`` asks the task to try again later."""

    status: str
    retry: bool = False
    retry_after: float | None = None


def _severity_tag(notification: Notification) -> str:
    return f"[{notification.severity.upper()}]"


def _send(channel: Channel, notification: Notification, delivery: Delivery) -> str:
    """Send ``notification`` on ``channel``; the provider's message id."""
    tag = _severity_tag(notification)
    if channel is Channel.TELEGRAM:
        text = f"{tag} {notification.title}"
        if notification.body:
            text += f"\n{notification.body}"
        return ch.telegram_send(text=text)
    if channel is Channel.EMAIL:
        body = (
            f"{notification.body}\n\n--\n"
            f"severity: {notification.severity}\ncode: {notification.code}\n"
            f"at: {notification.created_at:%Y-%m-%d %H:%M:%S} UTC\n"
            f"notification: #{notification.pk}\n"
        )
        return ch.email_send(subject=f"Tradebot {tag} {notification.title}", body=body)
    text = f"{tag} {notification.title}"
    if notification.body:
        text += f": {notification.body}"
    return ch.sms_send(text=text, reference=f"tradebot-delivery-{delivery.pk}")


def delivery_send(*, delivery_id: int, final: bool = False) -> SendOutcome:
    """Attempt one delivery (called by the ``notifications.deliver`` task).

    Only a "pending" or "retrying" delivery is claimed (so a redelivered task never sends
    twice). ``final``: the last attempt allowed; a temporary failure then fails it.
    """
    now = timezone.now()
    claimed = Delivery.objects.filter(pk=delivery_id, status__in=OPEN_STATUSES).update(
        status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return SendOutcome(status="not_open")
    delivery = Delivery.objects.select_related("notification").get(pk=delivery_id)
    channel = Channel(delivery.channel)

    def finish(status: str, error: str = "", **fields: Any) -> SendOutcome:
        Delivery.objects.filter(pk=delivery_id).update(
            status=status, last_error=error[:2000], updated_at=timezone.now(), **fields
        )
        return SendOutcome(status=status)

    reason = ch.configured(channel)
    if reason:
        return finish(DeliveryStatus.SKIPPED, reason)
    disabled = channel_disabled(channel)
    if disabled is not None:
        return finish(
            DeliveryStatus.SUPPRESSED,
            f"{channel} is disabled until {disabled.disabled_until:%Y-%m-%d %H:%M} UTC or "
            f"until its settings change: {disabled.error}",
        )
    if delivery.attempts == 1 and not rate_allow(channel):
        logger.warning(
            "notifications: %s over its rate (%s): delivery %s dropped",
            channel,
            settings.NOTIFY_RATE_LIMITS[channel.value],
            delivery_id,
        )
        return finish(
            DeliveryStatus.RATE_LIMITED,
            f"over the {channel} rate limit {settings.NOTIFY_RATE_LIMITS[channel.value]} "
            f"(NOTIFY_RATE_{channel.value.upper()})",
        )
    try:
        provider_id = _send(channel, delivery.notification, delivery)
    except NotConfigured as exc:
        return finish(DeliveryStatus.SKIPPED, exc.message)
    except CredentialsFailure as exc:
        channel_disable(channel, error=exc.message)
        return finish(DeliveryStatus.FAILED, exc.message)
    except PermanentFailure as exc:
        logger.warning("notifications: delivery %s failed: %s", delivery_id, exc.message)
        return finish(DeliveryStatus.FAILED, exc.message)
    except Exception as exc:  # noqa: BLE001 - TemporaryFailure, and anything unknown
        if not isinstance(exc, DeliveryFailure):
            logger.exception("notifications: delivery %s: unexpected error", delivery_id)
        message = getattr(exc, "message", None) or f"{exc.__class__.__name__}: {exc}"
        if final:
            logger.error(
                "notifications: delivery %s failed after %s attempts: %s",
                delivery_id,
                delivery.attempts,
                message,
            )
            return finish(
                DeliveryStatus.FAILED, f"gave up after {delivery.attempts} attempts: {message}"
            )
        finish(DeliveryStatus.RETRYING, message)
        return SendOutcome(
            status=DeliveryStatus.RETRYING,
            retry=True,
            retry_after=getattr(exc, "retry_after", None),
        )
    channel_enable(channel)
    return finish(DeliveryStatus.SENT, "", sent_at=timezone.now(), provider_id=provider_id[:128])


def deliveries_requeue(*, now: datetime | None = None) -> int:
    """Hand stuck deliveries to a task again (the sweeper): "pending" ones older than a
    minute (the broker was down), "sending" ones older than 10 minutes (a worker died)."""
    now = now or timezone.now()
    Delivery.objects.filter(
        status=DeliveryStatus.SENDING, updated_at__lt=now - SENDING_STALE
    ).update(status=DeliveryStatus.RETRYING, updated_at=now)
    stuck_retry = now - timedelta(seconds=settings.NOTIFY_RETRY_BACKOFF_MAX_SECONDS * 2)
    ids = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, updated_at__lt=now - PENDING_GRACE
        ).values_list("id", flat=True)
    ) + list(
        Delivery.objects.filter(
            status=DeliveryStatus.RETRYING, updated_at__lt=stuck_retry
        ).values_list("id", flat=True)
    )
    if ids:
        Delivery.objects.filter(pk__in=ids).update(updated_at=now)
        deliveries_enqueue(ids)
    return len(ids)


# --- rate limits -----------------------------------------------------------------------------


def rate_allow(channel: Channel, *, now_epoch: float | None = None) -> bool:
    """Count one message on ``channel`` in Redis; False when over NOTIFY_RATE_<CHANNEL>.

    Fixed windows shared by every process. Redis unreachable: allowed (logged), since a
    missing alert is worse than one too many.
    """
    from django_redis import get_redis_connection
    from redis.exceptions import RedisError

    limit = RateLimit.parse(settings.NOTIFY_RATE_LIMITS[channel.value])
    now_epoch = time.time() if now_epoch is None else now_epoch
    key = f"{rate_key_prefix()}{channel.value}:{limit.seconds}:{limit.window(now_epoch)}"
    try:
        client = get_redis_connection("default")
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, limit.seconds + 5)
        count, _ = pipe.execute()
    except RedisError:
        logger.warning("notifications: Redis unreachable, %s rate limit not applied", channel)
        return True
    return int(count) <= limit.count


def rate_key_prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'tradebot')}:notify:rate:"


# --- alerts (one open per code, shown on the panel until resolved) ---------------------------


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The "alert.raised" event payload."""
    return {
        "id": alert.pk,
        "severity": alert.severity,
        "code": alert.code,
        "message": alert.message,
        "created_at": alert.created_at,
    }


def alert_raise(*, severity: str, code: str, message: str, data: dict[str, Any]) -> Alert:
    """Raise an alert, at most one open per ``code``: an open one is returned as is.

    A new alert is pushed to the panel ("alert.raised") on commit and logged.
    """
    if severity not in AlertSeverity.values:
        raise AlertInvalid(
            f"unknown severity {severity!r}: use one of {', '.join(AlertSeverity.values)}"
        )
    existing = Alert.objects.filter(code=code, resolved_at__isnull=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                severity=severity, code=code, message=message, data=dict(data or {})
            )
    except IntegrityError:  # raised at the same moment by another process
        return Alert.objects.get(code=code, resolved_at__isnull=True)
    level = logging.WARNING if severity in ("info", "warning") else logging.ERROR
    logger.log(level, "alert %s %s: %s", severity, code, message)
    broadcast(GROUP_PANEL, "alert.raised", alert_payload(alert))
    return alert


@transaction.atomic
def alert_resolve(*, alert_id: int, actor: str) -> Alert:
    """Mark an alert resolved (audited); a later condition with its code raises a new one."""
    alert = Alert.objects.select_for_update().get(pk=alert_id)
    if alert.resolved_at is None:
        alert.resolved_at = timezone.now()
        alert.resolved_by = actor
        alert.save(update_fields=["resolved_at", "resolved_by"])
        audit_record(actor=actor, action="alert.resolve", target=alert.code, data={"id": alert.pk})
    return alert


# --- channel health (bad credentials) --------------------------------------------------------


def channel_disabled(channel: Channel, *, now: datetime | None = None) -> ChannelState | None:
    """The channel's state when it is disabled now (same settings, cool-down not over)."""
    now = now or timezone.now()
    state = ChannelState.objects.filter(channel=channel.value, disabled_until__gt=now).first()
    if state is None or state.config_fingerprint != ch.config_fingerprint(channel):
        return None
    return state


def _credentials_alert_code(channel: Channel) -> str:
    return f"notify_{channel.value}_credentials"


def channel_disable(channel: Channel, *, error: str) -> ChannelState:
    """Disable ``channel`` for NOTIFY_CHANNEL_COOLDOWN_SECONDS after a credentials failure.

    Reported once per set of settings: the first failure logs an error, writes an audit
    row and raises an "error" alert for the panel; the same settings failing again after
    the cool-down only log a warning. New settings that fail are reported again.
    """
    now = timezone.now()
    fingerprint = ch.config_fingerprint(channel)
    with transaction.atomic():
        state, _ = ChannelState.objects.select_for_update().get_or_create(channel=channel.value)
        first = state.reported_fingerprint != fingerprint
        state.disabled_until = now + timedelta(seconds=settings.NOTIFY_CHANNEL_COOLDOWN_SECONDS)
        state.disabled_at = now
        state.config_fingerprint = fingerprint
        state.error = error[:2000]
        if first:
            state.reported_fingerprint = fingerprint
        state.save()
        if first:
            audit_record(
                actor=ACTOR,
                action="notify.channel_disabled",
                target=channel.value,
                data={"error": error, "until": state.disabled_until.isoformat()},
            )
    if not first:
        logger.warning("notifications: %s still refuses our credentials: %s", channel, error)
        return state
    logger.error(
        "notifications: %s disabled until %s (or until its settings change): %s",
        channel,
        state.disabled_until,
        error,
    )
    try:
        alert_raise(
            severity="error",
            code=_credentials_alert_code(channel),
            message=(
                f"{channel} notifications are off: {error}. Fix the settings; the channel is "
                f"tried again when they change or after {settings.NOTIFY_CHANNEL_COOLDOWN_SECONDS} s."
            ),
            data={"channel": channel.value},
        )
    except Exception:  # noqa: BLE001 - reporting must not break the delivery task
        logger.exception("notifications: could not raise the %s credentials alert", channel)
    return state


def channel_enable(channel: Channel) -> None:
    """After a successful send: forget a past disable (a later failure is reported again)."""
    state = ChannelState.objects.filter(channel=channel.value).exclude(
        reported_fingerprint="", disabled_until__isnull=True
    )
    if not state.exists():
        return
    state.update(disabled_until=None, reported_fingerprint="", error="")
    _alerts_resolve(_credentials_alert_code(channel))


def _alerts_resolve(code: str) -> None:
    for alert_id in Alert.objects.filter(code=code, resolved_at__isnull=True).values_list(
        "id", flat=True
    ):
        alert_resolve(alert_id=alert_id, actor=ACTOR)


# --- Alertmanager ----------------------------------------------------------------------------


def alertmanager_sms_forward(*, message: WebhookMessage) -> dict[str, int]:
    """Forward each firing alert of a webhook message as an SMS (only SMS: Alertmanager
    itself sends the Telegram and e-mail of its critical route).

    Deduplicated by the alert's fingerprint (Alertmanager repeats a firing alert every
    repeat_interval), rate-limited like every SMS. Resolved alerts are not sent.
    """
    counts = {"forwarded": 0, "deduplicated": 0, "resolved_ignored": 0}
    for alert in message.alerts:
        if alert.status != "firing":
            counts["resolved_ignored"] += 1
            continue
        try:
            severity = severity_of(alert.severity)
        except RoutingError:
            severity = Severity.CRITICAL
        body = alert.annotations.get("description", "")
        _, created = _notify(
            severity=severity,
            code=f"alertmanager.{alert.name}"[:CODE_MAX],
            title=alert.summary,
            body=body if body != alert.summary else "",
            dedup_key=f"alertmanager:{alert.fingerprint}",
            data={
                "labels": alert.labels,
                "fingerprint": alert.fingerprint,
                "starts_at": alert.starts_at.isoformat(),
                "receiver": message.receiver,
            },
            channels=(Channel.SMS,),
        )
        counts["forwarded" if created else "deduplicated"] += 1
    return counts


def watchdog_beat(*, message: WebhookMessage) -> WatchdogHeartbeat:
    """Record a Watchdog delivery: the alerting pipeline (Prometheus -> Alertmanager) works."""
    now = timezone.now()
    with transaction.atomic():
        beat, _ = WatchdogHeartbeat.objects.select_for_update().get_or_create(pk=1)
        beat.last_seen_at = now
        beat.receiver = message.receiver[:128]
        beat.beats += 1
        beat.save()
    _alerts_resolve(WATCHDOG_ALERT_CODE)
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
