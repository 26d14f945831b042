"""Alerts: at most one open per code, shown on the panel until resolved (raise, resolve)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.realtime import GROUP_PANEL, broadcast
from apps.notifications.exceptions import AlertInvalid
from apps.notifications.models import (
    Alert,
    AlertSeverity,
)

logger = logging.getLogger(__name__)


ACTOR = "system:notifications"


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


def alerts_resolve(code: str) -> None:
    for alert_id in Alert.objects.filter(code=code, resolved_at__isnull=True).values_list(
        "id", flat=True
    ):
        alert_resolve(alert_id=alert_id, actor=ACTOR)
