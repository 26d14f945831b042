"""Risk and control writes: the system mode machine, the kill switch, incidents, limits,
alerts, the equity rules and the hypothetical book of OBSERVATION.

Every change is audited (AuditEvent) in the transaction that makes it, and every
refusal is audited too, outside the rolled-back work, before the refusal is raised:
a refused attempt changes nothing but leaves its trace. Panel events go out on commit.
Lock order (as in apps.trading.services): SystemState -> Order -> Position -> Account.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.realtime import GROUP_PANEL, broadcast
from apps.model.time import day_start, parse_day_boundary
from apps.notifications.models import AlertSeverity
from apps.notifications.services import alert_raise
from apps.risk import messages
from apps.risk.domain.checks import RiskLimits
from apps.risk.domain.metrics import (
    MonitorThresholds,
    MonitorVerdict,
    daily_pnl_pct,
    drawdown,
    equity_verdict,
)
from apps.risk.domain.modes import SystemMode, mode_change_refusal
from apps.risk.exceptions import IncidentRefused, ModeChangeRefused, RiskLimitInvalid
from apps.risk.models import (
    EquityMonitor,
    Incident,
    IncidentStatus,
    ModeChange,
    ModeSource,
    RiskLimit,
    SystemState,
)

__all__ = [
    "IncidentRefused",
    "ModeChangeRefused",
    "RiskLimitInvalid",
    "equity_observe",
    "incident_close",
    "incident_update",
    "risk_limit_set",
    "risk_limits_for",
    "risk_limits_from",
    "system_mode_get",
    "system_mode_lock_shared",
    "system_mode_set",
    "system_state_get",
]

logger = logging.getLogger(__name__)

RATIO_QUANTUM = Decimal("1e-8")
MONEY_QUANTUM = Decimal("1e-12")
REASON_MAX = 2000


# --- the mode row -------------------------------------------------------------------------


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


def _current_kill(state: SystemState) -> ModeChange | None:
    """The ModeChange that latched the KILL in force (None when not in KILL)."""
    if state.mode != SystemMode.KILL.value:
        return None
    return ModeChange.objects.filter(to_mode=SystemMode.KILL.value).order_by("-id").first()


def _refuse(exc_class: type, message: str, *, actor: str, action: str, data: dict) -> None:
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


def _mode_of(value: object) -> SystemMode:
    if isinstance(value, SystemMode):
        return value
    try:
        return SystemMode(str(value).strip().lower())
    except ValueError:
        raise ModeChangeRefused(
            f"unknown mode {value!r}: use one of {', '.join(m.value for m in SystemMode)}"
        ) from None


def _check_request(*, source: str, reason: str) -> None:
    if source not in ModeSource.values:
        raise ModeChangeRefused(
            f"unknown source {source!r}: use one of {', '.join(ModeSource.values)}"
        )
    if not isinstance(reason, str) or not reason.strip():
        raise ModeChangeRefused("a reason is required: say why the mode changes")
    if len(reason) > REASON_MAX:
        raise ModeChangeRefused(f"the reason is too long (max {REASON_MAX} characters)")


def _user_data(user: Any, otp_verified: bool) -> dict[str, Any]:
    return {
        "user": getattr(user, "username", None),
        "staff": bool(user is not None and user.is_active and user.is_staff),
        "otp_verified": bool(otp_verified),
    }


def _mode_record(
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
    _notify_on_commit(
        messages.mode_change_notify,
        previous=previous,
        mode=target.value,
        actor=actor,
        source=source,
        reason=reason,
        change_id=change.pk,
    )
    return change


def _notify_on_commit(message: Callable[..., Any], **kwargs: Any) -> None:
    """Send ``message(**kwargs)`` (``apps.risk.messages``) once the change has committed.

    robust: a notification failing is logged and never undoes or blocks the change.
    """
    transaction.on_commit(functools.partial(message, **kwargs), robust=True)


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
    (``apps.trading.services.kill_switch.mode_change``, the entry point for any requested
    mode, hands KILL to it); asked for KILL, this refuses. NORMAL, OBSERVATION and
    PAUSE move among themselves. KILL is latched: it is left
    only to OBSERVATION, by a staff ``user`` with ``otp_verified`` True, once the
    Incident opened by this KILL is closed; leaving KILL restarts the drawdown
    reference of the automatic rules at the current equity.

    Raises
    ------
    ModeChangeRefused
        Unknown mode or source, empty reason, a change the machine refuses. The
        attempt is audited ("mode.refused") and nothing else changes.
    """
    base = {"mode": str(mode), "source": source, "reason": reason, **_user_data(user, otp_verified)}
    try:
        target = _mode_of(mode)
        _check_request(source=source, reason=reason)
    except ModeChangeRefused as exc:
        _refuse(ModeChangeRefused, exc.message, actor=actor, action="mode.refused", data=base)
    reason = reason.strip()
    if target is SystemMode.KILL:
        _refuse(
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
        kill = _current_kill(state)
        incident_closed = (
            kill is not None
            and Incident.objects.filter(mode_change=kill, status=IncidentStatus.CLOSED).exists()
        )
        refusal = (
            mode_change_refusal(
                current,
                target,
                staff=base["staff"],
                otp_verified=base["otp_verified"],
                incident_closed=incident_closed,
            )
            or ""
        )
        if not refusal:
            _mode_record(
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
        _refuse(
            ModeChangeRefused,
            refusal,
            actor=actor,
            action="mode.refused",
            data={**base, "from": current.value, "target": target.value},
        )
    return state


# --- kill switch --------------------------------------------------------------------------


def kill_latch(*, actor: str, source: str, reason: str) -> tuple[Incident, datetime]:
    """Latch KILL: the decision half of the kill switch (the acting half is
    ``apps.trading.services.kill_switch.kill_switch_engage``, its only caller).

    In its own transaction, committed before anything else: the mode row is locked
    FOR UPDATE (waiting for any send checking the gate), set to KILL, the change is
    recorded (ModeChange, AuditEvent) with an open Incident linked to it, and
    "mode.changed" goes to the panel. From this commit on, ``order_send`` denies every
    order but the kill switch's own closing orders. Latching again while in KILL
    reuses the open incident ("kill.reengaged"). Returns the incident and when the
    latch was committed.

    Raises
    ------
    ModeChangeRefused
        Unknown source or empty reason (audited, nothing changed).
    """
    try:
        _check_request(source=source, reason=reason)
    except ModeChangeRefused as exc:
        _refuse(
            ModeChangeRefused,
            exc.message,
            actor=actor,
            action="mode.refused",
            data={"mode": "kill", "source": source, "reason": reason},
        )
    reason = reason.strip()
    with transaction.atomic():
        state = system_state_get(for_update=True)
        previous = state.mode
        if previous != SystemMode.KILL.value:
            change = _mode_record(
                state, SystemMode.KILL, actor=actor, source=source, reason=reason, extra={}
            )
            incident = Incident.objects.create(
                mode_change=change, title=f"KILL: {reason}"[:200], opened_by=actor
            )
        else:
            change = _current_kill(state)
            incident = (
                Incident.objects.filter(mode_change=change).order_by("-id").first()
                if change is not None
                else None
            )
            if incident is None:
                incident = Incident.objects.create(
                    mode_change=change, title=f"KILL: {reason}"[:200], opened_by=actor
                )
            audit_record(
                actor=actor,
                action="kill.reengaged",
                target="kill",
                data={"reason": reason, "source": source, "incident": incident.pk},
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
    Incident.objects.filter(pk=incident.pk).update(kill_report=summary)
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
    _notify_on_commit(
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


# --- incidents ----------------------------------------------------------------------------


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
    try:
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
        _refuse(IncidentRefused, exc.message, actor=actor, action="incident.refused", data=data)
    raise AssertionError("unreachable")  # pragma: no cover


def incident_close(*, incident_id: int, actor: str, user: Any, otp_verified: bool) -> Incident:
    """Close an incident: a staff user with a two-factor verified session, report complete."""
    data = {"target": str(incident_id), "incident": incident_id, **_user_data(user, otp_verified)}
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
        _refuse(IncidentRefused, exc.message, actor=actor, action="incident.refused", data=data)
    raise AssertionError("unreachable")  # pragma: no cover


# --- limits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitSpec:
    kind: type  # Decimal or int
    minimum: Decimal
    ceiling_setting: str
    required: bool = False
    floor_setting: str = ""  # the duplicate window: a minimum set in settings
    exclusive_minimum: bool = False


LIMIT_SPECS: dict[str, LimitSpec] = {
    "max_order_notional": LimitSpec(
        Decimal,
        Decimal(0),
        "RISK_CEILING_MAX_ORDER_NOTIONAL",
        required=True,
        exclusive_minimum=True,
    ),
    "max_position_notional": LimitSpec(
        Decimal,
        Decimal(0),
        "RISK_CEILING_MAX_POSITION_NOTIONAL",
        required=True,
        exclusive_minimum=True,
    ),
    "max_gross_exposure": LimitSpec(
        Decimal, Decimal(0), "RISK_CEILING_MAX_GROSS_EXPOSURE", exclusive_minimum=True
    ),
    "max_open_positions": LimitSpec(int, Decimal(0), "RISK_CEILING_MAX_OPEN_POSITIONS"),
    "price_collar_pct": LimitSpec(
        Decimal, Decimal(0), "RISK_CEILING_PRICE_COLLAR_PCT", exclusive_minimum=True
    ),
    "max_orders_per_minute": LimitSpec(int, Decimal(1), "RISK_CEILING_MAX_ORDERS_PER_MINUTE"),
    "duplicate_window_seconds": LimitSpec(
        int,
        Decimal(0),
        "RISK_MAX_DUPLICATE_WINDOW_SECONDS",
        floor_setting="RISK_MIN_DUPLICATE_WINDOW_SECONDS",
    ),
}


def limit_ranges() -> dict[str, dict[str, str]]:
    """``{field: {"min": ..., "max": ..., "min_exclusive": "true"|"false"}}`` from settings."""
    out = {}
    for name, spec in LIMIT_SPECS.items():
        low = getattr(settings, spec.floor_setting) if spec.floor_setting else spec.minimum
        out[name] = {
            "min": str(low),
            "max": str(getattr(settings, spec.ceiling_setting)),
            "min_exclusive": "true" if spec.exclusive_minimum else "false",
        }
    return out


def _limit_parse(name: str, raw: object) -> Decimal | int | None:
    spec = LIMIT_SPECS.get(name)
    if spec is None:
        raise RiskLimitInvalid(
            f"unknown risk limit {name!r}: use one of {', '.join(LIMIT_SPECS)}", field=name
        )
    text = "" if raw is None else str(raw).strip()
    low = getattr(settings, spec.floor_setting) if spec.floor_setting else spec.minimum
    high = getattr(settings, spec.ceiling_setting)
    bracket = "(" if spec.exclusive_minimum else "["
    allowed = f"{bracket}{low}, {high}]"
    if not text:
        if spec.required:
            raise RiskLimitInvalid(f"{name} is required: a number in {allowed}", field=name)
        return None  # the settings ceiling applies
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RiskLimitInvalid(
            f"{name}={text!r} is not a number: use one in {allowed}", field=name
        ) from None
    if not value.is_finite() or (spec.kind is int and value != value.to_integral_value()):
        kind = "a whole number" if spec.kind is int else "a finite number"
        raise RiskLimitInvalid(f"{name}={text!r} must be {kind} in {allowed}", field=name)
    too_low = value <= low if spec.exclusive_minimum else value < low
    if too_low or value > high:
        raise RiskLimitInvalid(f"{name}={text} is out of range: allowed {allowed}", field=name)
    return int(value) if spec.kind is int else value


def risk_limit_set(*, account_id: int, values: dict[str, str], actor: str) -> RiskLimit:
    """Set some of an account's risk limits, each within its settings range; audited.

    ``values`` maps field names to strings; an empty string resets an optional limit
    to its settings ceiling. Every value is checked before anything is written.

    Raises
    ------
    RiskLimitInvalid
        An unknown field, a bad number or one out of range (the message names the
        field and the allowed range). The attempt is audited, nothing is changed.
    """
    from apps.accounts.models import Account

    data: dict[str, Any] = {
        "target": str(account_id),
        "account_id": account_id,
        "values": {str(k): str(v) for k, v in (values or {}).items()},
    }
    try:
        if not values:
            raise RiskLimitInvalid(f"no limit given: set one of {', '.join(LIMIT_SPECS)}")
        parsed = {name: _limit_parse(name, raw) for name, raw in values.items()}
        if not Account.objects.filter(pk=account_id).exists():
            raise RiskLimitInvalid(f"account {account_id} does not exist", field="account_id")
    except RiskLimitInvalid as exc:
        _refuse(
            RiskLimitInvalid,
            exc.message,
            actor=actor,
            action="risk_limit.refused",
            data={
                **data,
                "field": exc.extra.get("field", ""),
            },
        )
    with transaction.atomic():
        row = RiskLimit.objects.select_for_update().filter(account_id=account_id).first()
        if row is None:
            row = RiskLimit(
                account_id=account_id,
                max_order_notional=settings.RISK_CEILING_MAX_ORDER_NOTIONAL,
                max_position_notional=settings.RISK_CEILING_MAX_POSITION_NOTIONAL,
            )
        old = {name: _str_or_none(getattr(row, name)) for name in parsed}
        for name, value in parsed.items():
            setattr(row, name, value)
        row.full_clean()
        row.save()
        audit_record(
            actor=actor,
            action="risk_limit.set",
            target=str(account_id),
            data={"old": old, "new": {name: _str_or_none(v) for name, v in parsed.items()}},
        )
    return row


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def risk_limits_for(*, account_id: int) -> RiskLimits:
    """The account's limits, never above the settings ceilings (empty fields: the ceiling)."""
    return risk_limits_from(RiskLimit.objects.filter(account_id=account_id).first())


def risk_limits_from(row: RiskLimit | None) -> RiskLimits:
    """``risk_limits_for`` of an already read RiskLimit row (None: the account has none).

    For callers that read the row together with other things in one query
    (``apps.trading.selectors.decision_inputs``); the same capping, the same result.
    """

    def capped(name: str, setting: str) -> Any:
        ceiling = getattr(settings, setting)
        value = getattr(row, name) if row is not None else None
        return ceiling if value is None else min(value, ceiling)

    floor = settings.RISK_MIN_DUPLICATE_WINDOW_SECONDS
    window = row.duplicate_window_seconds if row is not None else None
    return RiskLimits(
        max_order_notional=capped("max_order_notional", "RISK_CEILING_MAX_ORDER_NOTIONAL"),
        max_position_notional=capped("max_position_notional", "RISK_CEILING_MAX_POSITION_NOTIONAL"),
        max_gross_exposure=capped("max_gross_exposure", "RISK_CEILING_MAX_GROSS_EXPOSURE"),
        max_open_positions=capped("max_open_positions", "RISK_CEILING_MAX_OPEN_POSITIONS"),
        price_collar_pct=capped("price_collar_pct", "RISK_CEILING_PRICE_COLLAR_PCT"),
        max_orders_per_minute=capped("max_orders_per_minute", "RISK_CEILING_MAX_ORDERS_PER_MINUTE"),
        duplicate_window_seconds=floor if window is None else max(window, floor),
    )


# --- equity rules -------------------------------------------------------------------------


def monitor_thresholds() -> MonitorThresholds:
    return MonitorThresholds(
        drawdown_warn=settings.RISK_DRAWDOWN_WARN,
        drawdown_kill=settings.RISK_DRAWDOWN_KILL,
        daily_loss_warn=settings.RISK_DAILY_LOSS_WARN,
        daily_loss_pause=settings.RISK_DAILY_LOSS_PAUSE,
    )


def equity_observe(
    *, account_id: int, equity: Decimal, ts: datetime, open_positions: int
) -> MonitorVerdict:
    """Record one equity mark and apply the automatic rules (call outside a transaction).

    Drawdown (peak to trough of marked equity) > RISK_DRAWDOWN_WARN: warning alert;
    > RISK_DRAWDOWN_KILL: the verdict's mode is KILL, and the caller engages the kill
    switch (risk decides, trading acts: see ``apps.trading.services.marking``).
    Daily P&L against the equity at the start of the trading day (the day starts at
    RISK_DAY_BOUNDARY_UTC in market time, ``ts``: the bar time in a replay)
    < -RISK_DAILY_LOSS_WARN: warning; < -RISK_DAILY_LOSS_PAUSE: PAUSE (actor
    "rule:daily_loss"), once per trading day. The start-of-day equity is the last
    equity marked before the boundary (the first mark's when there is none).
    """
    boundary = parse_day_boundary(settings.RISK_DAY_BOUNDARY_UTC)
    today = day_start(ts, boundary)
    with transaction.atomic():
        monitor = EquityMonitor.objects.select_for_update().filter(account_id=account_id).first()
        if monitor is None:
            from apps.accounts.models import Account

            peak = Account.objects.values_list("peak_equity", flat=True).get(pk=account_id)
            monitor = EquityMonitor(
                account_id=account_id,
                ts=ts,
                equity=equity,
                peak_equity=max(peak, equity),
                day_start=today,
                day_start_equity=equity,
            )
        elif today != monitor.day_start:
            monitor.day_start = today
            monitor.day_start_equity = monitor.equity
        monitor.peak_equity = max(monitor.peak_equity, equity)
        monitor.equity = equity
        monitor.ts = ts
        monitor.open_positions = open_positions
        dd = drawdown(monitor.peak_equity, equity)
        daily = daily_pnl_pct(monitor.day_start_equity, equity)
        monitor.drawdown = dd.quantize(RATIO_QUANTUM, rounding=ROUND_HALF_EVEN)
        monitor.daily_pnl_pct = daily.quantize(RATIO_QUANTUM, rounding=ROUND_HALF_EVEN)
        verdict = equity_verdict(
            drawdown_pct=dd,
            daily_pct=daily,
            day=today.date(),
            mode=system_mode_get(),
            thresholds=monitor_thresholds(),
            daily_pause_done=monitor.daily_pause_day == today,
        )
        if verdict.mode is SystemMode.PAUSE:
            monitor.daily_pause_day = today
        monitor.save()
    if not verdict.alerts:
        return verdict
    numbers = {
        "account_id": account_id,
        "ts": ts.isoformat(),
        "equity": str(equity),
        "peak_equity": str(monitor.peak_equity),
        "drawdown": str(monitor.drawdown),
        "day_start_equity": str(monitor.day_start_equity),
        "daily_pnl_pct": str(monitor.daily_pnl_pct),
    }
    for alert in verdict.alerts:
        alert_raise(severity=alert.severity, code=alert.code, message=alert.message, data=numbers)
    if verdict.mode is SystemMode.PAUSE:
        try:
            system_mode_set(
                mode=SystemMode.PAUSE,
                actor="rule:daily_loss",
                source=ModeSource.RULE,
                reason=verdict.reason,
            )
        except ModeChangeRefused as exc:  # the mode changed meanwhile (e.g. KILL): keep it
            logger.warning("daily loss rule: pause refused: %s", exc.message)
    return verdict
