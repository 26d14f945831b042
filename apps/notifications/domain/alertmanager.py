"""Alertmanager's webhook payload (version 4), parsed and validated.

Pure: the view hands over the decoded JSON, this returns plain values or raises
PayloadError naming the first field that is wrong. Reference: Alertmanager's
``webhook_config`` documentation ("The Alertmanager will send HTTP POST requests in the
following JSON format").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

SUPPORTED_VERSION = "4"
STATUSES = ("firing", "resolved")


class PayloadError(ValueError):
    """The payload is not an Alertmanager v4 webhook message; ``field`` says where."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class WebhookAlert:
    """One alert of a webhook message."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return (
            self.annotations.get("summary")
            or self.annotations.get("description")
            or self.name
            or "alert"
        )


@dataclass(frozen=True)
class WebhookMessage:
    """A webhook message: a group of alerts sent to one receiver."""

    receiver: str
    status: str
    group_key: str
    alerts: tuple[WebhookAlert, ...]

    @property
    def firing(self) -> tuple[WebhookAlert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")


def _str_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(f"{field} must be an object of strings", field=field)
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise PayloadError(f"{field}.{key} must be a string", field=f"{field}.{key}")
    return dict(value)


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be an RFC 3339 time string", field=field)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{field}={value!r} is not an RFC 3339 time", field=field) from None
    if parsed.tzinfo is None:
        raise PayloadError(f"{field}={value!r} has no time zone", field=field)
    return parsed


def _status(value: Any, field: str) -> str:
    if value not in STATUSES:
        raise PayloadError(f"{field} must be one of {', '.join(STATUSES)}", field=field)
    return cast(str, value)  # one of STATUSES


def parse_webhook(payload: Any) -> WebhookMessage:
    """Validate a decoded webhook body; the first problem raises PayloadError.

    Required: ``version`` "4", ``status``, ``receiver``, ``groupKey`` and ``alerts``, a
    non-empty list whose items have ``status``, ``labels`` (with ``alertname``),
    ``annotations``, ``startsAt`` and ``fingerprint``.
    """
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object", field="")
    version = payload.get("version")
    if version != SUPPORTED_VERSION:
        raise PayloadError(
            f"version must be {SUPPORTED_VERSION!r} (Alertmanager webhook v4), got {version!r}",
            field="version",
        )
    status = _status(payload.get("status"), "status")
    receiver = payload.get("receiver")
    if not isinstance(receiver, str):
        raise PayloadError("receiver must be a string", field="receiver")
    group_key = payload.get("groupKey")
    if not isinstance(group_key, str):
        raise PayloadError("groupKey must be a string", field="groupKey")
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError("alerts must be a non-empty list", field="alerts")
    alerts = []
    for i, raw in enumerate(raw_alerts):
        where = f"alerts[{i}]"
        if not isinstance(raw, dict):
            raise PayloadError(f"{where} must be an object", field=where)
        labels = _str_map(raw.get("labels"), f"{where}.labels")
        if not labels.get("alertname"):
            raise PayloadError(
                f"{where}.labels.alertname is required", field=f"{where}.labels.alertname"
            )
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            raise PayloadError(
                f"{where}.fingerprint must be a non-empty string", field=f"{where}.fingerprint"
            )
        alerts.append(
            WebhookAlert(
                status=_status(raw.get("status"), f"{where}.status"),
                labels=labels,
                annotations=_str_map(raw.get("annotations", {}), f"{where}.annotations"),
                starts_at=_time(raw.get("startsAt"), f"{where}.startsAt"),
                fingerprint=fingerprint,
            )
        )
    return WebhookMessage(
        receiver=receiver, status=status, group_key=group_key, alerts=tuple(alerts)
    )
