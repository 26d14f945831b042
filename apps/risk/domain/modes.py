"""System mode: the operator's switch on what the bot may send."""

from __future__ import annotations

from enum import StrEnum


class SystemMode(StrEnum):
    """What the engine may do.

    NORMAL sends everything that passes the limits; OBSERVATION decides and audits but
    sends nothing; PAUSE sends only exposure-reducing orders (and cancels); KILL sends
    only the kill switch's own cancels and reduce-only closing orders (latched).
    """

    NORMAL = "normal"
    OBSERVATION = "observation"
    PAUSE = "pause"
    KILL = "kill"


def mode_change_refusal(
    current: SystemMode,
    target: SystemMode,
    *,
    staff: bool,
    otp_verified: bool,
    incident_closed: bool,
    open_kill_incident: int | None = None,
) -> str | None:
    """Return why ``current -> target`` is refused, or None when it is allowed.

    The machine: any mode -> KILL is always allowed (KILL -> KILL re-runs the kill
    switch); NORMAL, OBSERVATION and PAUSE move freely among themselves; a change to
    the mode already in force is refused (nothing would change); KILL is latched:
    leaving it is allowed only to OBSERVATION, by a staff user whose session passed
    two-factor verification, once the incident opened by that KILL is written and closed.
    While the incident of any KILL is open (``open_kill_incident``: its id), nothing may
    move to OBSERVATION or NORMAL (PAUSE and KILL stay allowed: they reduce risk).
    """
    if target is SystemMode.KILL:
        return None
    if current is target:
        return f"the system is already in {target.value}: nothing changed"
    if current is not SystemMode.KILL:
        return _open_kill_incident_refusal(target, open_kill_incident)
    if target is not SystemMode.OBSERVATION:
        return (
            f"KILL is latched: it can only be left to observation, not {target.value}; "
            "write and close the incident, then switch to observation"
        )
    if not staff:
        return "only a staff user can leave KILL"
    if not otp_verified:
        return "leaving KILL needs a two-factor (OTP) verified session: log in with your token"
    if not incident_closed:
        return (
            "leaving KILL needs the incident report of this KILL written (what happened, "
            "cause, action taken) and closed first"
        )
    return _open_kill_incident_refusal(target, open_kill_incident)


def _open_kill_incident_refusal(target: SystemMode, open_kill_incident: int | None) -> str | None:
    if open_kill_incident is None or target is SystemMode.PAUSE:
        return None
    return (
        f"incident #{open_kill_incident} of a KILL is open: write its report (what "
        f"happened, cause, action taken) and close it before going to {target.value}"
    )
