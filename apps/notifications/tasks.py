"""Thin Celery wrappers (routed to the "default" queue: ``notifications.*``).

``deliver`` sends one delivery and retries temporary failures with exponential backoff
(NOTIFY_RETRY_BACKOFF_SECONDS doubling up to NOTIFY_RETRY_BACKOFF_MAX_SECONDS, at most
NOTIFY_MAX_RETRIES retries, or the provider's Retry-After). ``sweep`` and
``watchdog_check`` run every minute from beat (apps/ops/schedules.py).
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.notifications.domain.routing import backoff_seconds


@shared_task(
    name="notifications.deliver", bind=True, max_retries=None, time_limit=60, soft_time_limit=50
)
def deliver(self, delivery_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    from apps.notifications.services.delivery import delivery_send

    retries = self.request.retries
    outcome = delivery_send(delivery_id=delivery_id, final=retries >= settings.NOTIFY_MAX_RETRIES)
    if outcome.retry:
        countdown = outcome.retry_after or backoff_seconds(
            retries,
            base=settings.NOTIFY_RETRY_BACKOFF_SECONDS,
            cap=settings.NOTIFY_RETRY_BACKOFF_MAX_SECONDS,
        )
        raise self.retry(countdown=min(countdown, settings.NOTIFY_RETRY_BACKOFF_MAX_SECONDS))
    return outcome.status


@shared_task(name="notifications.sweep", time_limit=60, soft_time_limit=50)
def sweep() -> int:
    from apps.notifications.services.delivery import deliveries_requeue

    return deliveries_requeue()


@shared_task(name="notifications.watchdog_check", time_limit=30, soft_time_limit=20)
def watchdog_check() -> float | None:
    from apps.notifications.services.watchdog import watchdog_check as check

    return check()
