"""Refusals of the risk and control services (shown to people as they are)."""

from __future__ import annotations

from apps.core.exceptions import ApplicationError


class ModeChangeRefused(ApplicationError):
    """The mode machine refused the change (latched KILL, missing reason, unknown mode...)."""

    code = "mode_change_refused"


class RiskLimitInvalid(ApplicationError):
    """A risk limit outside its allowed range (``extra["field"]`` names it)."""

    code = "risk_limit_invalid"


class IncidentRefused(ApplicationError):
    """An incident edit or close the rules refuse (closed already, texts missing, no OTP)."""

    code = "incident_refused"
