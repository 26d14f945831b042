"""Alertmanager's webhook: each firing alert forwarded as an SMS, deduplicated by its fingerprint."""

from __future__ import annotations

from apps.notifications.domain.alertmanager import WebhookMessage
from apps.notifications.domain.routing import (
    Channel,
    RoutingError,
    Severity,
    severity_of,
)
from apps.notifications.services.notifications import CODE_MAX, notify_channels


def alertmanager_sms_forward(*, message: WebhookMessage) -> dict[str, int]:
    """Forward each firing alert of a webhook message as an SMS (only SMS: Alertmanager
    itself sends the Telegram and e-mail of its critical route).

    Deduplicated by the alert's fingerprint (Alertmanager repeats a firing alert every
    repeat_interval), rate-limited like every SMS. Resolved alerts are not sent.
    """
    counts = {"forwarded": 0, "deduplicated": 0, "resolved_ignored": 0}
    for alert in message.alerts:
        if alert.status != "firing":
            counts["resolved_ignored"] += 1
            continue
        try:
            severity = severity_of(alert.severity)
        except RoutingError:
            severity = Severity.CRITICAL
        body = alert.annotations.get("description", "")
        _, created = notify_channels(
            severity=severity,
            code=f"alertmanager.{alert.name}"[:CODE_MAX],
            title=alert.summary,
            body=body if body != alert.summary else "",
            dedup_key=f"alertmanager:{alert.fingerprint}",
            data={
                "labels": alert.labels,
                "fingerprint": alert.fingerprint,
                "starts_at": alert.starts_at.isoformat(),
                "receiver": message.receiver,
            },
            channels=(Channel.SMS,),
        )
        counts["forwarded" if created else "deduplicated"] += 1
    return counts
