"""Delivering one delivery on its channel (claimed once, retried, failed or suppressed), and the sweeper's requeue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from apps.notifications import channels as ch
from apps.notifications.domain.errors import (
    CredentialsFailure,
    DeliveryFailure,
    NotConfigured,
    PermanentFailure,
)
from apps.notifications.domain.routing import (
    Channel,
)
from apps.notifications.models import (
    OPEN_STATUSES,
    Delivery,
    DeliveryStatus,
    Notification,
)
from apps.notifications.services.channel_state import (
    channel_disable,
    channel_disabled,
    channel_enable,
    rate_allow,
)
from apps.notifications.services.notifications import deliveries_enqueue

logger = logging.getLogger(__name__)


# A delivery left "pending" this long (broker down at enqueue time), or "sending" this
# long (a worker died mid-send), is handed to a task again by the sweeper.
PENDING_GRACE = timedelta(seconds=60)


SENDING_STALE = timedelta(minutes=10)


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
