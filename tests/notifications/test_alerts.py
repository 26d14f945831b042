"""Alerts (apps.notifications): one open per code, severity checked, resolve audited, the
open list most severe first. Alert keeps its original table, risk_alert."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.notifications.exceptions import AlertInvalid
from apps.notifications.models import Alert
from apps.notifications.selectors import alert_list_open
from apps.notifications.services.alerts import alert_payload, alert_raise, alert_resolve

pytestmark = pytest.mark.django_db


def test_alert_when_moved_then_same_table_and_notifications_label():
    assert Alert._meta.app_label == "notifications"
    assert Alert._meta.db_table == "risk_alert"


def test_alert_raise_when_code_already_open_then_the_open_one_returned():
    first = alert_raise(severity="warning", code="test.dup", message="one", data={"n": 1})
    again = alert_raise(severity="critical", code="test.dup", message="two", data={})

    assert again.pk == first.pk
    assert Alert.objects.filter(code="test.dup").count() == 1
    assert alert_payload(first) == {
        "id": first.pk,
        "severity": "warning",
        "code": "test.dup",
        "message": "one",
        "created_at": first.created_at,
    }


def test_alert_raise_when_severity_unknown_then_refused_and_nothing_stored():
    with pytest.raises(AlertInvalid, match="unknown severity 'loud'"):
        alert_raise(severity="loud", code="test.bad", message="m", data={})

    assert not Alert.objects.filter(code="test.bad").exists()


def test_alert_resolve_when_resolved_then_audited_and_a_new_one_can_open():
    alert = alert_raise(severity="error", code="test.resolve", message="m", data={})

    alert_resolve(alert_id=alert.pk, actor="user:alice")
    reopened = alert_raise(severity="error", code="test.resolve", message="m", data={})

    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert alert.resolved_by == "user:alice"
    assert AuditEvent.objects.filter(action="alert.resolve", target="test.resolve").count() == 1
    assert reopened.pk != alert.pk


def test_alert_list_open_when_mixed_then_unresolved_most_severe_first():
    alert_raise(severity="info", code="test.info", message="m", data={})
    alert_raise(severity="critical", code="test.critical", message="m", data={})
    warning = alert_raise(severity="warning", code="test.warning", message="m", data={})
    alert_resolve(alert_id=warning.pk, actor="user:alice")

    codes = [a.code for a in alert_list_open()]

    assert codes.index("test.critical") < codes.index("test.info")
    assert "test.warning" not in codes
