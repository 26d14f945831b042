"""Alertmanager webhook v4 payload validation (pure)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from apps.notifications.domain.alertmanager import PayloadError, parse_webhook


def payload(**overrides):
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="CriticalDrawdown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "telegram-email-sms",
        "groupLabels": {"alertname": "CriticalDrawdown"},
        "commonLabels": {"alertname": "CriticalDrawdown", "severity": "critical"},
        "commonAnnotations": {"summary": "CRITICAL: Drawdown > 15%"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CriticalDrawdown", "severity": "critical"},
                "annotations": {"summary": "CRITICAL: Drawdown > 15%"},
                "startsAt": "2025-01-02T03:04:05.678Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "c4a1d2e3f4a5b6c7",
            }
        ],
    }
    body.update(overrides)
    return body


def test_parse_when_valid_v4_then_alerts_with_labels_and_fingerprint():
    message = parse_webhook(payload())

    assert message.receiver == "telegram-email-sms"
    (alert,) = message.firing
    assert alert.name == "CriticalDrawdown"
    assert alert.severity == "critical"
    assert alert.summary == "CRITICAL: Drawdown > 15%"
    assert alert.fingerprint == "c4a1d2e3f4a5b6c7"
    assert alert.starts_at == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def broken(path, value):
    body = payload()
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "", "the body must be a JSON object"),
        (payload(version="3"), "version", "version must be '4'"),
        (broken(["version"], KeyError), "version", "version must be '4'"),
        (payload(status="burning"), "status", "status must be one of firing, resolved"),
        (payload(receiver=5), "receiver", "receiver must be a string"),
        (payload(alerts=[]), "alerts", "alerts must be a non-empty list"),
        (payload(alerts="x"), "alerts", "alerts must be a non-empty list"),
        (payload(alerts=[1]), "alerts[0]", "alerts[0] must be an object"),
        (
            broken(["alerts", 0, "labels"], {"severity": "critical"}),
            "alerts[0].labels.alertname",
            "alerts[0].labels.alertname is required",
        ),
        (
            broken(["alerts", 0, "labels"], {"alertname": 7}),
            "alerts[0].labels.alertname",
            "alerts[0].labels.alertname must be a string",
        ),
        (
            broken(["alerts", 0, "fingerprint"], KeyError),
            "alerts[0].fingerprint",
            "alerts[0].fingerprint must be a non-empty string",
        ),
        (
            broken(["alerts", 0, "startsAt"], "yesterday"),
            "alerts[0].startsAt",
            "alerts[0].startsAt='yesterday' is not an RFC 3339 time",
        ),
        (
            broken(["alerts", 0, "startsAt"], "2025-01-02T03:04:05"),
            "alerts[0].startsAt",
            "has no time zone",
        ),
        (
            broken(["alerts", 0, "status"], "pending"),
            "alerts[0].status",
            "alerts[0].status must be one of firing, resolved",
        ),
    ],
)
def test_parse_when_field_bad_then_error_names_it(body, field, message):
    with pytest.raises(PayloadError) as info:
        parse_webhook(copy.deepcopy(body))

    assert info.value.field == field
    assert message in info.value.message
