"""The database itself refuses to rewrite the decision log and the audit trail."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from apps.audit.models import AuditEvent, DecisionLog
from apps.audit.services import audit_record, decision_record
from tests.trading.factories import T0

pytestmark = pytest.mark.django_db


def a_decision() -> DecisionLog:
    return decision_record(
        bar_ts=T0,
        account="paper",
        instrument="BTC-USD",
        strategy="sma_cross",
        strategy_params={"fast": 10},
        inputs={"close": "100"},
        signal="enter_long",
        mode="NORMAL",
        checks=[{"name": "mode_gate", "passed": True, "detail": "", "values": {}}],
        action="buy",
        order_ids=["tb-1"],
    )


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_decisionlog SET action = 'sell' WHERE id = %s",
        "DELETE FROM audit_decisionlog WHERE id = %s",
    ],
)
def test_decision_log_when_raw_update_or_delete_then_database_refuses(sql: str) -> None:
    decision = a_decision()

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [decision.pk])

    assert DecisionLog.objects.get(pk=decision.pk).action == "buy"


def test_decision_log_when_orm_save_or_delete_then_database_refuses() -> None:
    decision = a_decision()
    decision.action = "sell"

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        decision.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        DecisionLog.objects.all().delete()

    assert DecisionLog.objects.get(pk=decision.pk).action == "buy"


def test_decision_log_when_superuser_role_then_still_refused() -> None:
    # The test connects as the `postgres` superuser: the trigger binds every role.
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        (is_super,) = cursor.fetchone()
    event = audit_record(actor="test", action="x")

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="y")

    assert is_super is True
    assert AuditEvent.objects.get(pk=event.pk).action == "x"


def test_decision_log_when_checks_fail_then_outcome_and_failed_names_recorded() -> None:
    decision = decision_record(
        bar_ts=T0,
        account="paper",
        instrument="BTC-USD",
        strategy="sma_cross",
        strategy_params={},
        inputs={},
        signal="enter_long",
        mode="PAUSE",
        checks=[
            {"name": "mode_gate", "passed": False, "detail": "pause", "values": {}},
            {"name": "max_position", "passed": True, "detail": "", "values": {}},
        ],
        action="denied",
        order_ids=["tb-2"],
    )

    assert decision.check_result == "failed"
    assert decision.failed_checks == ["mode_gate"]
    assert DecisionLog.objects.filter(failed_checks__contains=["mode_gate"]).count() == 1
