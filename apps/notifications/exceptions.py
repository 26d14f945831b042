"""Refusals of the notification and alert services (shown to people as they are)."""

from __future__ import annotations

from apps.core.exceptions import ApplicationError


class AlertInvalid(ApplicationError):
    """An alert with an unknown severity."""

    code = "alert_invalid"
