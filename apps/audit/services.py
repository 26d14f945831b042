"""Writing to the append-only logs. Everything may call these; audit imports only core."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from apps.audit.models import AuditEvent, CheckOutcome, DecisionLog
from apps.core.text import data_clean


def audit_record(
    *, actor: str, action: str, target: str = "", data: Mapping[str, Any] | None = None
) -> AuditEvent:
    """Append one audit event. Text PostgreSQL cannot store (a NUL character, a lone
    surrogate: what a refused input often carries) is recorded with U+FFFD in its place
    (``apps.core.text.data_clean``), so recording an attempt never fails because of it."""
    return AuditEvent.objects.create(
        actor=data_clean(actor),
        action=action,
        target=data_clean(target),
        data=data_clean(dict(data or {})),
    )


def decision_record(
    *,
    bar_ts: datetime,
    account: str,
    instrument: str,
    strategy: str,
    strategy_params: Mapping[str, Any],
    inputs: Mapping[str, Any],
    signal: str,
    mode: str,
    checks: Iterable[Mapping[str, Any]],
    action: str,
    order_ids: Iterable[str] = (),
    model_version: str = "",
    prediction_id: int | None = None,
    source: str = "engine",
) -> DecisionLog:
    checks = list(checks)
    failed = [c["name"] for c in checks if not c["passed"]]
    outcome = (
        CheckOutcome.NONE
        if not checks
        else (CheckOutcome.FAILED if failed else CheckOutcome.PASSED)
    )
    return DecisionLog.objects.create(
        bar_ts=bar_ts,
        account=account,
        instrument=instrument,
        strategy=strategy,
        strategy_params=dict(strategy_params),
        inputs=dict(inputs),
        signal=signal,
        mode=mode,
        checks=checks,
        check_result=outcome,
        failed_checks=failed,
        action=action,
        order_ids=list(order_ids),
        model_version=model_version,
        prediction_id=prediction_id,
        source=source,
    )
