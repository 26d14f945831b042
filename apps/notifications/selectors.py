"""Notification reads: the open alerts."""

from __future__ import annotations

from apps.notifications.models import Alert


def alert_list_open() -> list[Alert]:
    """Alerts not resolved yet, most severe first, then newest."""
    rank = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    alerts = list(Alert.objects.filter(resolved_at__isnull=True).order_by("-created_at", "-id"))
    return sorted(alerts, key=lambda a: rank.get(a.severity, 9))
