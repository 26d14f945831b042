"""The services every interface shares (panel, API, CLI, Telegram) refuse text PostgreSQL
cannot store with a message naming it, audited, nothing changed; never a database error.
The kill switch instead stores its reason cleaned (tests/panel/test_bad_input.py)."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.brokers.models import Discrepancy, DiscrepancyStatus
from apps.brokers.services.common import DiscrepancyResolveRefused
from apps.brokers.services.resolution import discrepancy_resolve
from apps.risk.domain.modes import SystemMode
from apps.risk.exceptions import IncidentRefused, ModeChangeRefused
from apps.risk.models import Incident, ModeChange
from apps.risk.services.incidents import incident_update
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.services.kill_switch import kill_switch_engage
from tests.brokers.test_paper_reconciliation import _discrepancy
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("reason", ["fat\x00finger", "fat\ud800finger"])
def test_mode_set_when_reason_is_unstorable_then_refused_audited_and_unchanged(reason):
    # Act
    with pytest.raises(ModeChangeRefused, match="the reason contains .* remove it"):
        system_mode_set(mode="pause", actor="telegram:42", source="telegram", reason=reason)

    # Assert
    assert system_mode_get() is SystemMode.NORMAL
    assert not ModeChange.objects.exists()
    refused = AuditEvent.objects.get(action="mode.refused")
    assert refused.data["reason"] == "fat\ufffdfinger"  # stored cleaned in the audit


@pytest.mark.parametrize("reason", ["rm -rf\x00", "\ud800"])
def test_kill_switch_from_the_cli_when_reason_is_unstorable_then_engaged(reason):
    # Act
    report = kill_switch_engage(actor="cli:root", source="cli", reason=reason)

    # Assert
    assert system_mode_get() is SystemMode.KILL
    assert "\ufffd" in report.reason
    assert report.reason_cleaned


@pytest.mark.parametrize("field", ["what_happened", "cause", "action_taken"])
def test_incident_update_when_a_text_is_unstorable_then_refused_naming_it(field):
    # Arrange
    kill_switch_engage(actor="cli:root", source="cli", reason="test")
    incident = Incident.objects.get()
    texts = {"what_happened": "a", "cause": "b", "action_taken": "c", field: "x\x00y"}

    # Act
    with pytest.raises(IncidentRefused, match=f"{field} contains a NUL character"):
        incident_update(incident_id=incident.pk, actor="user:ops", **texts)

    # Assert
    incident.refresh_from_db()
    assert (incident.what_happened, incident.cause, incident.action_taken) == ("", "", "")
    assert AuditEvent.objects.filter(action="incident.refused").count() == 1


def test_discrepancy_resolve_when_note_is_unstorable_then_refused_and_open(staff_user):
    # Arrange
    row = _discrepancy(paper_account(), kind="cash", key="cash:USD", ours="10000", broker="9990")

    # Act
    with pytest.raises(DiscrepancyResolveRefused, match="the note contains a lone surrogate"):
        discrepancy_resolve(
            discrepancy_id=row.pk,
            action="investigated",
            note="seen\udc00",
            user=staff_user,
            otp_verified=True,
        )

    # Assert
    assert Discrepancy.objects.get(pk=row.pk).status == DiscrepancyStatus.OPEN
