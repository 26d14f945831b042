"""The channels' state: rate limits in Redis, a channel disabled when its credentials are refused and enabled again by a send."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.notifications import channels as ch
from apps.notifications.domain.routing import (
    Channel,
    RateLimit,
)
from apps.notifications.models import (
    ChannelState,
)
from apps.notifications.services.alerts import ACTOR, alert_raise, alerts_resolve

logger = logging.getLogger(__name__)


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
    alerts_resolve(_credentials_alert_code(channel))
