"""Every KILL has its own incident, and a closed incident is final (issue 13, hole 4).

Through the panel's JSON API and forms, as an operator would: a KILL, its incident
written and closed, then a second KILL before anyone left KILL.
"""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, transaction

from apps.audit.models import AuditEvent
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident, IncidentStatus
from apps.risk.services.kill import kill_report_record
from apps.risk.services.modes import system_mode_get
from tests.panel.factories import trading_history_create

pytestmark = pytest.mark.django_db

REPORT = {"what_happened": "runaway orders", "cause": "bad params", "action_taken": "fixed"}


def _post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def _kill_and_close(client) -> Incident:
    killed = _post(client, "/api/kill", {"reason": "first", "confirm": True})
    assert killed.status_code == 200
    incident = Incident.objects.get(pk=killed.json()["incident_id"])
    client.post(f"/incidents/{incident.pk}/report/", REPORT)
    client.post(f"/incidents/{incident.pk}/close/")
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.CLOSED
    return incident


def test_kill_when_the_previous_kills_incident_is_closed_then_a_new_incident_is_opened(
    verified_client,
):
    # Arrange: KILL, its incident written and closed, the system still in KILL.
    trading_history_create(points=3)
    first = _kill_and_close(verified_client)
    first_report = dict(first.kill_report)

    # Act: a second KILL.
    second = _post(verified_client, "/api/kill", {"reason": "second", "confirm": True})

    # Assert: its own incident, open; the closed one untouched.
    assert second.status_code == 200
    assert second.json()["incident_id"] != first.pk
    incident = Incident.objects.get(pk=second.json()["incident_id"])
    assert incident.status == IncidentStatus.OPEN
    assert incident.title == "KILL: second"
    assert incident.mode_change_id != first.mode_change_id
    assert incident.kill_report["flat"] is True
    first.refresh_from_db()
    assert first.status == IncidentStatus.CLOSED
    assert first.kill_report == first_report
    assert (first.what_happened, first.cause, first.action_taken) == tuple(REPORT.values())
    assert not AuditEvent.objects.filter(action="kill.reengaged").exists()


@pytest.mark.parametrize("target", ["observation", "normal", "resume"])
def test_leaving_kill_when_the_second_kills_incident_is_open_then_refused(verified_client, target):
    # Arrange
    trading_history_create(points=3)
    _kill_and_close(verified_client)
    second = _post(verified_client, "/api/kill", {"reason": "second", "confirm": True})
    incident_id = second.json()["incident_id"]

    # Act
    response = _post(verified_client, "/api/mode", {"mode": target, "reason": "all good"})

    # Assert
    assert response.status_code == 400
    assert "incident" in response.json()["error"]
    assert system_mode_get() is SystemMode.KILL

    # And once that incident is written and closed, KILL is left to OBSERVATION only.
    verified_client.post(f"/incidents/{incident_id}/report/", REPORT)
    verified_client.post(f"/incidents/{incident_id}/close/")
    left = _post(verified_client, "/api/mode", {"mode": "observation", "reason": "reviewed"})
    assert left.status_code == 200
    assert system_mode_get() is SystemMode.OBSERVATION


def test_kill_when_the_incident_is_still_open_then_reengaged_under_the_same_incident(
    verified_client,
):
    # Arrange
    trading_history_create(points=3)
    first = _post(verified_client, "/api/kill", {"reason": "first", "confirm": True})

    # Act
    again = _post(verified_client, "/api/kill", {"reason": "again", "confirm": True})

    # Assert
    assert again.json()["incident_id"] == first.json()["incident_id"]
    assert Incident.objects.count() == 1
    assert AuditEvent.objects.filter(action="kill.reengaged").count() == 1


def test_closed_incident_when_its_report_is_posted_again_then_refused_and_unchanged(
    verified_client,
):
    # Arrange
    trading_history_create(points=3)
    incident = _kill_and_close(verified_client)

    # Act
    verified_client.post(
        f"/incidents/{incident.pk}/report/",
        {"what_happened": "rewritten", "cause": "x", "action_taken": "y"},
    )

    # Assert
    incident.refresh_from_db()
    assert incident.what_happened == REPORT["what_happened"]
    assert AuditEvent.objects.filter(action="incident.refused").exists()


def test_closed_incident_when_a_late_kill_report_arrives_then_it_is_not_stored_on_it(
    verified_client,
):
    # Arrange: the sweep of a KILL finishing after its incident was closed.
    trading_history_create(points=3)
    incident = _kill_and_close(verified_client)
    report = dict(incident.kill_report)

    # Act
    kill_report_record(
        incident=incident,
        actor="user:operator",
        source="api",
        reason="late",
        summary={"cancels_sent": 9, "closing_orders": [], "flat": False, "errors": []},
    )

    # Assert
    incident.refresh_from_db()
    assert incident.kill_report == report
    late = AuditEvent.objects.filter(action="kill.engaged").order_by("-id").first()
    assert late.data["incident_closed_before_report"] is True


@pytest.mark.parametrize(
    "change",
    [
        lambda pk: Incident.objects.filter(pk=pk).update(what_happened="rewritten"),
        lambda pk: Incident.objects.filter(pk=pk).update(kill_report={}),
        lambda pk: Incident.objects.filter(pk=pk).update(status=IncidentStatus.OPEN),
        lambda pk: Incident.objects.filter(pk=pk).delete(),
    ],
    ids=["report", "kill-report", "reopen", "delete"],
)
def test_closed_incident_when_changed_in_the_database_then_postgresql_refuses(
    verified_client, change
):
    # Arrange
    trading_history_create(points=3)
    incident = _kill_and_close(verified_client)

    # Act / Assert
    with pytest.raises(DatabaseError, match="is closed: its report is final"), transaction.atomic():
        change(incident.pk)
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.CLOSED
    assert incident.what_happened == REPORT["what_happened"]
