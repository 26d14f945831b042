"""The KILL latch, the decision half of the kill switch (trading's ``kill_switch_engage`` acts), and the record of what it did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.notifications.models import AlertSeverity
from apps.notifications.services.alerts import alert_raise
from apps.risk import messages
from apps.risk.domain.modes import SystemMode
from apps.risk.exceptions import ModeChangeRefused
from apps.risk.models import Incident, IncidentStatus
from apps.risk.services.common import (
    check_request,
    current_kill,
    message_on_commit,
    mode_record,
    refuse,
)
from apps.risk.services.modes import system_state_get


def kill_latch(
    *, actor: str, source: str, reason: str, reason_cleaned: tuple[str, ...] = ()
) -> tuple[Incident, datetime]:
    """Latch KILL: the decision half of the kill switch (the acting half is
    ``apps.trading.services.kill_switch.kill_switch_engage``, its only caller).

    In its own transaction, committed before anything else: the mode row is locked
    FOR UPDATE (waiting for any send checking the gate), set to KILL, the change is
    recorded (ModeChange, AuditEvent) with an open Incident linked to it, and
    "mode.changed" goes to the panel. From this commit on, ``order_send`` denies every
    order but the kill switch's own closing orders. Latching again while in KILL
    reuses the latched KILL's incident while it is open ("kill.reengaged"); once that
    incident is closed, a new KILL is a new latch (a KILL -> KILL ModeChange) with its
    own incident, which must be written and closed in turn before KILL can be left.
    ``reason_cleaned`` (what ``text_clean`` did to the reason) goes into the audit.
    Returns the incident and when the latch was committed.

    Raises
    ------
    ModeChangeRefused
        Unknown source or empty reason (audited, nothing changed).
    """
    try:
        check_request(source=source, reason=reason)
    except ModeChangeRefused as exc:
        refuse(
            ModeChangeRefused,
            exc.message,
            actor=actor,
            action="mode.refused",
            data={"mode": "kill", "source": source, "reason": reason},
        )
    reason = reason.strip()
    cleaned = {"reason_cleaned": list(reason_cleaned)} if reason_cleaned else {}
    with transaction.atomic():
        state = system_state_get(for_update=True)
        change = current_kill(state)
        incident = (
            Incident.objects.select_for_update()
            .filter(mode_change=change, status=IncidentStatus.OPEN)
            .order_by("-id")
            .first()
            if change is not None
            else None
        )
        if incident is None:
            # Not in KILL, or in a KILL whose incident is closed: this KILL is its own.
            change = mode_record(
                state, SystemMode.KILL, actor=actor, source=source, reason=reason, extra=cleaned
            )
            incident = Incident.objects.create(
                mode_change=change, title=f"KILL: {reason}"[:200], opened_by=actor
            )
        else:
            audit_record(
                actor=actor,
                action="kill.reengaged",
                target="kill",
                data={"reason": reason, "source": source, "incident": incident.pk, **cleaned},
            )
    mode_persisted_at = timezone.now()
    return incident, mode_persisted_at


def kill_report_record(
    *, incident: Incident, actor: str, source: str, reason: str, summary: dict[str, Any]
) -> None:
    """Record what the kill switch did: on the incident, in the audit log, as a critical
    alert and (on commit) as a notification with the report."""
    cancels = summary["cancels_sent"]
    closing = summary["closing_orders"]
    flat = summary["flat"]
    # A closed incident is final: a report arriving after the incident was closed (the
    # sweep of a re-engaged KILL racing the close) goes to the audit row and alert only.
    stored = Incident.objects.filter(pk=incident.pk, status=IncidentStatus.OPEN).update(
        kill_report=summary
    )
    if not stored:
        summary = {**summary, "incident_closed_before_report": True}
    audit_record(
        actor=actor,
        action="kill.engaged",
        target="kill",
        data={
            "reason": reason,
            "source": source,
            "incident": incident.pk,
            **summary,
        },
    )
    message_on_commit(
        messages.kill_report_notify, incident_id=incident.pk, actor=actor, summary=summary
    )
    alert_raise(
        severity=AlertSeverity.CRITICAL,
        code="kill_switch",
        message=(
            f"KILL engaged by {actor} ({source}): {reason}. {cancels} cancel(s), "
            f"{len(closing)} closing order(s), {'flat' if flat else 'NOT flat'}"
        ),
        data={"incident": incident.pk, **summary},
    )
