"""Incidents: writing the report and closing it (staff, two-factor verified, report complete)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.text import text_problem
from apps.risk.exceptions import IncidentRefused
from apps.risk.models import Incident, IncidentStatus
from apps.risk.services.common import refuse, user_data


def _incident_locked(incident_id: int) -> Incident:
    incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
    if incident is None:
        raise IncidentRefused(f"incident {incident_id} does not exist")
    return incident


def incident_update(
    *, incident_id: int, what_happened: str, cause: str, action_taken: str, actor: str
) -> Incident:
    """Write the incident report (what happened, cause, action taken). Closed ones are final."""
    data = {"target": str(incident_id), "incident": incident_id}
    texts = {"what_happened": what_happened, "cause": cause, "action_taken": action_taken}
    try:
        for name, text in texts.items():
            problem = text_problem(text or "")
            if problem:  # PostgreSQL cannot store it
                raise IncidentRefused(f"{name} {problem}: remove it")
        with transaction.atomic():
            incident = _incident_locked(incident_id)
            if incident.status == IncidentStatus.CLOSED:
                raise IncidentRefused(f"incident {incident_id} is closed: its report is final")
            old = {
                "what_happened": incident.what_happened,
                "cause": incident.cause,
                "action_taken": incident.action_taken,
            }
            incident.what_happened = (what_happened or "").strip()
            incident.cause = (cause or "").strip()
            incident.action_taken = (action_taken or "").strip()
            incident.full_clean()
            incident.save()
            audit_record(
                actor=actor,
                action="incident.update",
                target=str(incident_id),
                data={
                    "old": old,
                    "new": {
                        "what_happened": incident.what_happened,
                        "cause": incident.cause,
                        "action_taken": incident.action_taken,
                    },
                },
            )
            return incident
    except IncidentRefused as exc:
        refuse(IncidentRefused, exc.message, actor=actor, action="incident.refused", data=data)
    raise AssertionError("unreachable")  # pragma: no cover


def incident_close(*, incident_id: int, actor: str, user: Any, otp_verified: bool) -> Incident:
    """Close an incident: a staff user with a two-factor verified session, report complete."""
    data = {"target": str(incident_id), "incident": incident_id, **user_data(user, otp_verified)}
    try:
        with transaction.atomic():
            incident = _incident_locked(incident_id)
            if incident.status == IncidentStatus.CLOSED:
                raise IncidentRefused(f"incident {incident_id} is already closed")
            if not data["staff"]:
                raise IncidentRefused("only a staff user can close an incident")
            if not data["otp_verified"]:
                raise IncidentRefused(
                    "closing an incident needs a two-factor (OTP) verified session"
                )
            missing = [
                name
                for name in ("what_happened", "cause", "action_taken")
                if not getattr(incident, name).strip()
            ]
            if missing:
                raise IncidentRefused(
                    f"write the report before closing: {', '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} empty"
                )
            incident.status = IncidentStatus.CLOSED
            incident.closed_at = timezone.now()
            incident.closed_by = actor
            incident.save()
            audit_record(
                actor=actor,
                action="incident.close",
                target=str(incident_id),
                data={k: data[k] for k in ("user", "otp_verified")},
            )
            return incident
    except IncidentRefused as exc:
        refuse(IncidentRefused, exc.message, actor=actor, action="incident.refused", data=data)
    raise AssertionError("unreachable")  # pragma: no cover
