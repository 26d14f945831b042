"""The notifications risk sends about itself: a mode change and the kill switch's report.
Built here, next to what they describe; delivered by apps.notifications."""

from __future__ import annotations

import logging
from typing import Any

from apps.notifications.domain.routing import Severity
from apps.notifications.models import Notification
from apps.notifications.services.notifications import notify

logger = logging.getLogger(__name__)


def mode_change_notify(
    *, previous: str, mode: str, actor: str, source: str, reason: str, change_id: int
) -> Notification | None:
    """A system mode change (called on commit by ``system_mode_set``).

    KILL is critical (everyone, SMS included); an automatic PAUSE (a rule) is an error;
    any other change is a warning. Never raises: it runs after the change committed.
    """
    try:
        if mode == "kill":
            severity = Severity.CRITICAL
        elif mode == "pause" and source in ("rule", "system"):
            severity = Severity.ERROR
        else:
            severity = Severity.WARNING
        return notify(
            severity=severity,
            code=f"mode.{mode}",
            title=f"Mode {previous.upper()} -> {mode.upper()}",
            body=f"by {actor} ({source}): {reason}",
            dedup_key=f"mode-change:{change_id}",
            data={"from": previous, "to": mode, "actor": actor, "source": source},
        )
    except Exception:  # noqa: BLE001 - a notification must never undo or block a mode change
        logger.exception("notifications: mode change %s not notified", change_id)
        return None


def kill_report_notify(*, incident_id: int | None, actor: str, summary: dict[str, Any]) -> None:
    """What the kill switch did (cancels, closing orders, flat or not). Not flat, or with
    errors: critical; flat: error (the KILL itself was already sent as critical)."""
    try:
        flat = bool(summary.get("flat"))
        errors = list(summary.get("errors") or [])
        lines = [
            f"cancels sent: {summary.get('cancels_sent', 0)}, orders denied: "
            f"{summary.get('orders_denied', 0)}",
            f"closing orders: {len(summary.get('closing_orders') or [])}",
            "all positions closed (flat)" if flat else "NOT FLAT: positions still open",
        ]
        lines += [f"error: {e}" for e in errors[:5]]
        notify(
            severity=Severity.ERROR if flat and not errors else Severity.CRITICAL,
            code="kill_switch.report",
            title=f"Kill switch report (incident #{incident_id})" + ("" if flat else ": NOT FLAT"),
            body="\n".join(lines),
            dedup_key=f"kill-report:{incident_id}:{summary.get('mode_persisted_at', '')}",
            data={"incident": incident_id, "actor": actor, "flat": flat},
        )
    except Exception:  # noqa: BLE001 - see mode_change_notify
        logger.exception("notifications: kill report of incident %s not notified", incident_id)
