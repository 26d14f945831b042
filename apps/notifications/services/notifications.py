"""notify(): a notification stored (or deduplicated) with one delivery per channel of its severity, handed to Celery after commit."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.notifications import channels as ch
from apps.notifications.domain.routing import (
    Channel,
    RoutingError,
    Severity,
    channels_for,
    severity_of,
    truncate,
)
from apps.notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
)

logger = logging.getLogger(__name__)


TITLE_MAX = 200


CODE_MAX = 96


class NotificationInvalid(ApplicationError):
    code = "notification_invalid"


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
    notification, _ = notify_channels(
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


def notify_channels(
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
