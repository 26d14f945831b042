"""The system mode: the single SystemState row, the mode in force, its share lock, and the mode machine (``system_mode_set``)."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import F

from apps.risk.domain.modes import SystemMode, mode_change_refusal
from apps.risk.exceptions import ModeChangeRefused
from apps.risk.models import EquityMonitor, Incident, IncidentStatus, SystemState
from apps.risk.services.common import check_request, current_kill, mode_record, refuse, user_data


def system_state_get(*, for_update: bool = False) -> SystemState:
    """The single SystemState row (created in NORMAL on first use)."""
    qs = SystemState.objects.select_for_update() if for_update else SystemState.objects
    state = qs.filter(pk=1).first()
    if state is None:
        SystemState.objects.get_or_create(pk=1)
        state = qs.get(pk=1)
    return state


def system_mode_lock_shared() -> SystemMode:
    """Read the mode under a share lock (call inside a transaction).

    ``system_mode_set`` and ``kill_switch_engage`` take the row FOR UPDATE, so a mode
    change waits for every send that is checking the gate, and every later send sees
    the new mode.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT mode FROM {SystemState._meta.db_table} WHERE id = 1 FOR SHARE")  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        system_state_get()
        return system_mode_lock_shared()
    return SystemMode(row[0])


def system_mode_get() -> SystemMode:
    """The mode in force (committed in the database: it survives restarts)."""
    return SystemMode(system_state_get().mode)


def _mode_of(value: object) -> SystemMode:
    if isinstance(value, SystemMode):
        return value
    try:
        return SystemMode(str(value).strip().lower())
    except ValueError:
        raise ModeChangeRefused(
            f"unknown mode {value!r}: use one of {', '.join(m.value for m in SystemMode)}"
        ) from None


def system_mode_set(
    *,
    mode: SystemMode | str,
    actor: str,
    source: str,
    reason: str,
    user: Any = None,
    otp_verified: bool = False,
) -> SystemState:
    """Change the system mode through the mode machine; record and push every change.

    KILL is not set here: risk latches it (``kill_latch``) when the kill switch runs
    (``apps.trading.services.kill_switch.kill_switch_engage``); asked for KILL, this
    refuses. NORMAL, OBSERVATION and
    PAUSE move among themselves. KILL is latched: it is left
    only to OBSERVATION, by a staff ``user`` with ``otp_verified`` True, once the
    Incident opened by this KILL is closed; while any KILL's incident is open nothing
    goes to OBSERVATION or NORMAL (PAUSE only); leaving KILL restarts the drawdown
    reference of the automatic rules at the current equity.

    Raises
    ------
    ModeChangeRefused
        Unknown mode or source, empty reason, a change the machine refuses. The
        attempt is audited ("mode.refused") and nothing else changes.
    """
    base = {"mode": str(mode), "source": source, "reason": reason, **user_data(user, otp_verified)}
    try:
        target = _mode_of(mode)
        check_request(source=source, reason=reason)
    except ModeChangeRefused as exc:
        refuse(ModeChangeRefused, exc.message, actor=actor, action="mode.refused", data=base)
    reason = reason.strip()
    if target is SystemMode.KILL:
        refuse(
            ModeChangeRefused,
            "KILL is engaged by the kill switch (apps.trading.services.kill_switch), "
            "not by a mode change",
            actor=actor,
            action="mode.refused",
            data=base,
        )

    refusal = ""
    with transaction.atomic():
        state = system_state_get(for_update=True)
        current = SystemMode(state.mode)
        kill = current_kill(state)
        incident_closed = (
            kill is not None
            and Incident.objects.filter(mode_change=kill, status=IncidentStatus.CLOSED).exists()
        )
        open_kill_incident = (
            Incident.objects.filter(
                status=IncidentStatus.OPEN, mode_change__to_mode=SystemMode.KILL.value
            )
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        refusal = (
            mode_change_refusal(
                current,
                target,
                staff=base["staff"],
                otp_verified=base["otp_verified"],
                incident_closed=incident_closed,
                open_kill_incident=open_kill_incident,
            )
            or ""
        )
        if not refusal:
            mode_record(
                state,
                target,
                actor=actor,
                source=source,
                reason=reason,
                extra={k: base[k] for k in ("user", "otp_verified")},
            )
            if current is SystemMode.KILL:
                EquityMonitor.objects.update(peak_equity=F("equity"), drawdown=0)
    if refusal:
        refuse(
            ModeChangeRefused,
            refusal,
            actor=actor,
            action="mode.refused",
            data={**base, "from": current.value, "target": target.value},
        )
    return state
