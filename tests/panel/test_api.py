"""JSON endpoints: same login, CSRF, services and audit as the panel; 4xx JSON on bad input."""

from __future__ import annotations

import json

import pytest

from apps.audit.models import AuditEvent
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident, ModeChange
from apps.risk.services.modes import system_mode_get
from tests.panel.factories import trading_history_create

pytestmark = pytest.mark.django_db


def _post(client, url, body):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(url, data, content_type="application/json")


def test_mode_when_pause_then_changed_by_the_api_user_and_audited(verified_client):
    # Act
    response = _post(verified_client, "/api/mode", {"mode": "pause", "reason": "news"})

    # Assert
    assert response.status_code == 200
    assert response.json()["mode"] == "pause"
    assert system_mode_get() is SystemMode.PAUSE
    change = ModeChange.objects.get()
    assert (change.actor, change.source, change.reason) == ("user:operator", "api", "news")
    assert AuditEvent.objects.filter(actor="user:operator").exclude(action="api.refused").exists()


@pytest.mark.parametrize(
    ("url", "body", "status", "message"),
    [
        ("/api/mode", b"{not json", 400, "malformed JSON"),
        ("/api/mode", b"[1, 2]", 400, "JSON object"),
        ("/api/mode", {"mode": "moon", "reason": "x"}, 400, "unknown mode"),
        ("/api/mode", {"mode": "kill", "reason": "x"}, 400, "/api/kill"),
        ("/api/mode", {"mode": "pause"}, 400, "reason"),
        ("/api/mode", {"mode": "pause", "reason": "  "}, 400, "reason"),
        ("/api/kill", {"reason": "x"}, 400, "confirm"),
        ("/api/kill", {"confirm": True}, 400, "reason"),
        ("/api/kill", b"", 400, "malformed JSON"),
        ("/api/limits", {"values": {}}, 400, "values"),
        ("/api/limits", {"values": {"max_order_notional": 1.5}}, 400, "string or an integer"),
        (
            "/api/limits",
            {"account_id": 999999, "values": {"max_order_notional": "10"}},
            404,
            "no account",
        ),
    ],
)
def test_bad_input_then_4xx_json_saying_what_was_wrong_nothing_changed_attempt_audited(
    verified_client, url, body, status, message
):
    # Arrange
    trading_history_create(points=3)

    # Act
    response = _post(verified_client, url, body)

    # Assert
    assert response.status_code == status
    assert message in response.json()["error"]
    assert system_mode_get() is SystemMode.NORMAL
    assert not ModeChange.objects.exists()
    event = AuditEvent.objects.get(action="api.refused")
    assert event.actor == "user:operator"
    assert event.target == f"POST {url}"
    assert message in event.data["error"]


def test_limits_when_out_of_range_then_400_naming_the_field_and_unchanged(verified_client):
    # Arrange
    account = trading_history_create(points=3)
    assert (
        _post(
            verified_client, "/api/limits", {"values": {"max_order_notional": "4000"}}
        ).status_code
        == 200
    )

    # Act
    response = _post(verified_client, "/api/limits", {"values": {"max_order_notional": "1e15"}})

    # Assert
    assert response.status_code == 400
    assert "max_order_notional" in response.json()["error"]
    account.risk_limit.refresh_from_db()
    assert account.risk_limit.max_order_notional == 4000
    assert AuditEvent.objects.filter(action="api.refused").count() == 1


def test_limits_when_valid_then_saved_and_returned(verified_client):
    # Arrange
    account = trading_history_create(points=3)

    # Act
    response = _post(
        verified_client,
        "/api/limits",
        {
            "account_id": account.id,
            "values": {"max_order_notional": "3000", "max_open_positions": 4},
        },
    )

    # Assert
    assert response.status_code == 200
    assert response.json()["account_id"] == account.id
    assert response.json()["max_open_positions"] == 4
    account.risk_limit.refresh_from_db()
    assert account.risk_limit.max_order_notional == 3000


def test_risk_when_get_then_the_risk_overview(verified_client):
    # Arrange
    trading_history_create(points=30)

    # Act
    response = verified_client.get("/api/risk")

    # Assert
    assert response.status_code == 200
    data = response.json()
    for key in (
        "limits",
        "ceilings",
        "exposures",
        "var",
        "correlation",
        "drawdown",
        "daily_pnl_pct",
    ):
        assert key in data


def test_risk_when_post_then_405_json(verified_client):
    response = _post(verified_client, "/api/risk", {})
    assert response.status_code == 405
    assert "not allowed" in response.json()["error"]


def test_kill_then_resume_refused_until_incident_closed(verified_client):
    # Arrange
    trading_history_create(points=5)

    # Act 1
    killed = _post(verified_client, "/api/kill", {"reason": "api kill", "confirm": True})
    refused = _post(verified_client, "/api/mode", {"mode": "observation", "reason": "go"})

    # Assert 1
    assert killed.status_code == 200
    assert killed.json()["mode"] == "kill"
    assert killed.json()["flat"] is True
    assert refused.status_code == 400
    assert refused.json()["error"]
    assert system_mode_get() is SystemMode.KILL
    assert AuditEvent.objects.filter(action="api.refused", target="POST /api/mode").count() == 1

    # Act 2: write and close the incident through the panel, then resume
    incident = Incident.objects.get()
    verified_client.post(
        f"/incidents/{incident.id}/report/",
        {"what_happened": "a", "cause": "b", "action_taken": "c"},
    )
    verified_client.post(f"/incidents/{incident.id}/close/")
    resumed = _post(verified_client, "/api/mode", {"mode": "observation", "reason": "reviewed"})

    # Assert 2
    assert resumed.status_code == 200
    assert system_mode_get() is SystemMode.OBSERVATION


def test_api_when_anonymous_then_401_json(client):
    response = _post(client, "/api/mode", {"mode": "pause", "reason": "x"})
    assert response.status_code == 401
    assert "error" in response.json()
    assert system_mode_get() is SystemMode.NORMAL
