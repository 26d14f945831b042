"""Info notifications recorded in bulk (table 5.1: info goes to no channel, it is recorded).

``notify`` serialises each notification on its dedup key with an advisory lock, which is
right for what is pushed to people and too slow for hundreds of fills at once (the kill
switch's closing fills). ``info_record_many`` stores many info notifications in two
statements, deduplicated within NOTIFY_DEDUP_WINDOW_SECONDS like ``notify``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.notifications.domain.routing import Severity, truncate
from apps.notifications.models import Notification
from apps.notifications.services.notifications import TITLE_MAX

logger = logging.getLogger(__name__)


def info_record_many(items: Iterable[Mapping[str, Any]]) -> list[Notification]:
    """Record info notifications (each a mapping of ``code``, ``title``, ``body``,
    ``dedup_key``, ``data``); an item whose dedup key was recorded within the window
    counts one more occurrence instead. Returns the new ones."""
    # Table 5.1 routes info to no channel (channels_for(Severity.INFO) is empty): no Delivery.
    items = list(items)
    if not items:
        return []
    now = timezone.now()
    window = now - timedelta(seconds=settings.NOTIFY_DEDUP_WINDOW_SECONDS)
    keys = {item["dedup_key"] for item in items}
    with transaction.atomic():
        seen = set(
            Notification.objects.filter(dedup_key__in=keys, created_at__gte=window).values_list(
                "dedup_key", flat=True
            )
        )
        if seen:
            Notification.objects.filter(dedup_key__in=seen, created_at__gte=window).update(
                occurrences=F("occurrences") + 1, last_occurred_at=now
            )
        fresh: dict[str, Mapping[str, Any]] = {}
        for item in items:
            if item["dedup_key"] not in seen:
                fresh.setdefault(item["dedup_key"], item)
        created = Notification.objects.bulk_create(
            [
                Notification(
                    severity=Severity.INFO.value,
                    code=item["code"],
                    title=truncate(item["title"], TITLE_MAX),
                    body=item.get("body") or "",
                    dedup_key=key,
                    data=dict(item.get("data") or {}),
                )
                for key, item in fresh.items()
            ]
        )
    for notification in created:
        logger.info("notification info %s: %s", notification.code, notification.title)
    return created


def info_record_many_on_commit(items: Iterable[Mapping[str, Any]]) -> None:
    """``info_record_many`` once the caller's transaction commits (robust: a failure is
    logged and never undoes or blocks what the caller did)."""
    items = list(items)
    transaction.on_commit(lambda: info_record_many(items), robust=True)
