"""Mode runbooks: pause, resume or kill from the command line, and the graceful shutdown (runbook 6.2)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apps.audit.services import audit_record
from apps.model.orders import OPEN_STATUSES
from apps.ops.exceptions import OpsError
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.models import Order
from apps.trading.services.kill_switch import kill_switch_engage


def mode_change(*, target: str, actor: str, reason: str, execute: bool) -> str:
    """pause / resume / kill from the command line: what would change, or change it."""
    if not reason.strip():
        raise OpsError('a reason is required (--reason "..."): it goes into the audit trail')
    current = system_mode_get()
    wanted = SystemMode(target)
    plan = f"mode {current.value.upper()} -> {wanted.value.upper()} (reason: {reason})"
    if wanted is SystemMode.KILL:
        plan += "; the kill switch cancels every open order and closes every position"
    if not execute:
        return f"would change {plan}"
    if wanted is SystemMode.KILL:
        report = kill_switch_engage(actor=actor, source="cli", reason=reason)
        return f"changed {plan}: {report}"

    try:
        system_mode_set(mode=wanted, actor=actor, source="cli", reason=reason)
    except Exception as exc:  # the risk service's refusal (ModeChangeRefused), shown as is
        message = getattr(exc, "message", None)
        if message is None:
            raise
        raise OpsError(message) from exc
    return f"changed {plan}"


def working_orders() -> list[Any]:
    return list(Order.objects.filter(status__in=OPEN_STATUSES).select_related("instrument"))


@dataclass
class ShutdownReport:
    paused: str
    orders_left: list[str]
    waited_seconds: float
    engine: str
    engine_stopped: bool = True

    @property
    def complete(self) -> bool:
        """Nothing left working: no order, no engine (else the runbook is not done)."""
        return not self.orders_left and self.engine_stopped


def shutdown_graceful(
    *,
    actor: str,
    reason: str,
    timeout: float,
    poll: float = 1.0,
    progress: Callable[[int], None] | None = None,
    engine_wait: float = 30.0,
) -> ShutdownReport:
    """Runbook 6.2: PAUSE, wait for working orders (up to ``timeout``), stop the engine.

    The engine is signalled with SIGTERM through its pid file (ENGINE_PIDFILE): it
    finishes the bar in progress and stops. Orders still working at the timeout are
    reported, not cancelled (PAUSE lets them complete or be cancelled by their owner;
    use `kill` to cancel everything).
    """
    mode = system_mode_get()
    if mode in (SystemMode.PAUSE, SystemMode.KILL):
        paused = f"already {mode.value.upper()}"
    else:
        paused = mode_change(
            target=SystemMode.PAUSE.value, actor=actor, reason=reason, execute=True
        )
    started = time.monotonic()
    left = working_orders()
    while left and time.monotonic() - started < timeout:
        if progress:
            progress(len(left))
        time.sleep(poll)
        left = working_orders()
    waited = round(time.monotonic() - started, 1)
    from apps.ops.pidfile import engine_stop

    engine_stopped, engine = engine_stop(wait=engine_wait)
    report = ShutdownReport(
        paused=paused,
        orders_left=[
            f"{o.client_order_id} {o.side} {o.quantity} {o.instrument} {o.status}" for o in left
        ],
        waited_seconds=waited,
        engine=engine,
        engine_stopped=engine_stopped,
    )
    audit_record(
        actor=actor,
        action="ops.shutdown_graceful",
        data={"orders_left": report.orders_left, "waited_seconds": waited, "engine": engine},
    )
    return report
