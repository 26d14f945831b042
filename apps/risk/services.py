"""The system mode (read at the last moment before any send) and risk limits."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

from apps.audit.services import audit_record
from apps.core.realtime import GROUP_PANEL, broadcast
from apps.risk.domain.checks import RiskLimits
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange, ModeSource, RiskLimit, SystemState


def system_state_get(*, for_update: bool = False) -> SystemState:
    """The single SystemState row (created in NORMAL on first use)."""
    qs = SystemState.objects.select_for_update() if for_update else SystemState.objects
    state = qs.filter(pk=1).first()
    if state is None:
        state, _ = SystemState.objects.get_or_create(pk=1)
    return state


def system_mode_lock_shared() -> SystemMode:
    """Read the mode under a share lock (call inside a transaction).

    ``system_mode_set`` takes the row FOR UPDATE, so a mode change waits for every
    send that is checking the gate, and every later send sees the new mode.
    """
    system_state_get()  # make sure the row exists
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT mode FROM {SystemState._meta.db_table} WHERE id = 1 FOR SHARE")  # noqa: S608
        return SystemMode(cursor.fetchone()[0])


def system_mode_get() -> SystemMode:
    return SystemMode(system_state_get().mode)


@transaction.atomic
def system_mode_set(*, mode: SystemMode, actor: str, source: str, reason: str) -> SystemState:
    """Change the mode, record who/when/why/where, and push it to every panel.

    The full mode machine (KILL latch, who may leave KILL) is built on this in the
    risk-and-control issue; here every change is recorded and applied.
    """
    if source not in ModeSource.values:
        raise ValueError(
            f"unknown mode source {source!r}: use one of {', '.join(ModeSource.values)}"
        )
    state = system_state_get(for_update=True)
    previous = state.mode
    state.mode = mode.value
    state.changed_by = actor
    state.reason = reason
    state.source = source
    state.save()
    ModeChange.objects.create(
        from_mode=previous, to_mode=mode.value, actor=actor, source=source, reason=reason
    )
    audit_record(
        actor=actor,
        action="mode.set",
        target=mode.value,
        data={"from": previous, "to": mode.value, "reason": reason, "source": source},
    )
    broadcast(
        GROUP_PANEL,
        "mode.changed",
        {
            "mode": mode.value,
            "previous": previous,
            "actor": actor,
            "reason": reason,
            "source": source,
        },
    )
    return state


def risk_limits_for(*, account_id: int) -> RiskLimits:
    """The account's limits, never above the settings ceilings."""
    ceiling_order = settings.RISK_CEILING_MAX_ORDER_NOTIONAL
    ceiling_position = settings.RISK_CEILING_MAX_POSITION_NOTIONAL
    row = RiskLimit.objects.filter(account_id=account_id).first()
    order_limit: Decimal = row.max_order_notional if row else ceiling_order
    position_limit: Decimal = row.max_position_notional if row else ceiling_position
    return RiskLimits(
        max_order_notional=min(order_limit, ceiling_order),
        max_position_notional=min(position_limit, ceiling_position),
    )
