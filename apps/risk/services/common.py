"""What the risk services share: refusals audited before they are raised, the request checks, recording a mode change."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.realtime import GROUP_PANEL, broadcast
from apps.core.text import text_problem
from apps.risk import messages
from apps.risk.domain.modes import SystemMode
from apps.risk.exceptions import ModeChangeRefused
from apps.risk.models import ModeChange, ModeSource, SystemState

REASON_MAX = 2000


def current_kill(state: SystemState) -> ModeChange | None:
    """The ModeChange that latched the KILL in force (None when not in KILL)."""
    if state.mode != SystemMode.KILL.value:
        return None
    return ModeChange.objects.filter(to_mode=SystemMode.KILL.value).order_by("-id").first()


def refuse(exc_class: type, message: str, *, actor: str, action: str, data: dict) -> None:
    """Audit a refused attempt (outside the caller's rolled-back work) and raise it."""
    audit_record(
        actor=actor,
        action=action,
        target=data.get("target", ""),
        data={
            **data,
            "error": message,
        },
    )
    raise exc_class(message, **data)


def check_request(*, source: str, reason: str) -> None:
    if source not in ModeSource.values:
        raise ModeChangeRefused(
            f"unknown source {source!r}: use one of {', '.join(ModeSource.values)}"
        )
    if not isinstance(reason, str) or not reason.strip():
        raise ModeChangeRefused("a reason is required: say why the mode changes")
    if len(reason) > REASON_MAX:
        raise ModeChangeRefused(f"the reason is too long (max {REASON_MAX} characters)")
    problem = text_problem(reason)
    if problem:  # PostgreSQL cannot store it (the kill switch cleans its reason first)
        raise ModeChangeRefused(f"the reason {problem}: remove it")


def user_data(user: Any, otp_verified: bool) -> dict[str, Any]:
    return {
        "user": getattr(user, "username", None),
        "staff": bool(user is not None and user.is_active and user.is_staff),
        "otp_verified": bool(otp_verified),
    }


def mode_record(
    state: SystemState, target: SystemMode, *, actor: str, source: str, reason: str, extra: dict
) -> ModeChange:
    """Apply a change on the locked ``state`` row: ModeChange, audit, broadcast on commit."""
    previous = state.mode
    state.mode = target.value
    state.changed_by = actor
    state.reason = reason
    state.source = source
    state.save()
    change = ModeChange.objects.create(
        from_mode=previous, to_mode=target.value, actor=actor, source=source, reason=reason
    )
    audit_record(
        actor=actor,
        action="mode.set",
        target=target.value,
        data={
            "from": previous,
            "to": target.value,
            "reason": reason,
            "source": source,
            "mode_change": change.pk,
            **extra,
        },
    )
    broadcast(
        GROUP_PANEL,
        "mode.changed",
        {
            "mode": target.value,
            "previous": previous,
            "actor": actor,
            "reason": reason,
            "source": source,
        },
    )
    message_on_commit(
        messages.mode_change_notify,
        previous=previous,
        mode=target.value,
        actor=actor,
        source=source,
        reason=reason,
        change_id=change.pk,
    )
    return change


def message_on_commit(message: Callable[..., Any], **kwargs: Any) -> None:
    """Send ``message(**kwargs)`` (``apps.risk.messages``) once the change has committed.

    robust: a notification failing is logged and never undoes or blocks the change.
    """
    transaction.on_commit(functools.partial(message, **kwargs), robust=True)
