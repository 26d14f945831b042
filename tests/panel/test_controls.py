"""The panel's controls: POST + CSRF + reason -> one risk service, audited; refusals change nothing."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.notifications.services.alerts import alert_raise
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident, ModeChange
from apps.risk.services import incidents, limits, modes
from apps.risk.services.modes import system_mode_get
from apps.trading.models import Order, Position
from apps.trading.services import kill_switch
from tests.panel.factories import trading_history_create

pytestmark = pytest.mark.django_db

OPEN_STATUSES = ("initialized", "submitted", "accepted", "partially_filled", "pending_cancel")


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def spy(monkeypatch):
    """Record the keyword arguments of the risk services the panel calls (and still call them)."""
    calls: dict[str, list[dict]] = {}

    modules = {
        "system_mode_set": modes,
        "kill_switch_engage": kill_switch,
        "incident_update": incidents,
        "incident_close": incidents,
        "risk_limit_set": limits,
    }

    def wrap(name):
        module = modules[name]
        real = getattr(module, name)

        def recorder(**kwargs):
            calls.setdefault(name, []).append(kwargs)
            return real(**kwargs)

        monkeypatch.setattr(module, name, recorder)

    for name in modules:
        wrap(name)
    return calls


def _kill(client, reason="test kill"):
    return client.post(reverse("panel:kill_switch"), {"reason": reason, "confirm": "on"})


@pytest.mark.parametrize(
    ("button", "mode"),
    [
        ("pause", SystemMode.PAUSE),
        ("observation", SystemMode.OBSERVATION),
        ("resume", SystemMode.NORMAL),
    ],
)
def test_mode_button_when_reason_given_then_service_called_as_panel_user_and_audited(
    verified_client, spy, button, mode
):
    # Arrange
    if mode is SystemMode.NORMAL:
        modes.system_mode_set(
            mode=SystemMode.PAUSE, actor="user:someone", source="panel", reason="setup"
        )

    # Act
    response = verified_client.post(
        reverse("panel:mode_set"), {"mode": button, "reason": "volatility"}
    )

    # Assert
    assert response.status_code == 302
    assert system_mode_get() is mode
    call = spy["system_mode_set"][-1]
    assert call["mode"] is mode
    assert call["actor"] == "user:operator"
    assert call["source"] == "panel"
    assert call["reason"] == "volatility"
    assert call["otp_verified"] is True
    assert call["user"].username == "operator"
    change = ModeChange.objects.order_by("-id").first()
    assert (change.to_mode, change.actor, change.source) == (mode.value, "user:operator", "panel")
    assert AuditEvent.objects.filter(actor="user:operator").exists()


@pytest.mark.parametrize(
    "data",
    [{"mode": "pause"}, {"mode": "pause", "reason": "   "}, {"mode": "moon", "reason": "x"}, {}],
)
def test_mode_button_when_reason_missing_or_mode_unknown_then_refused_and_nothing_changed(
    verified_client, spy, data
):
    # Act
    response = verified_client.post(reverse("panel:mode_set"), data)

    # Assert
    assert response.status_code == 302
    assert system_mode_get() is SystemMode.NORMAL
    assert "system_mode_set" not in spy
    assert not ModeChange.objects.exists()
    assert any("refused" in m for m in _messages(response))
    assert AuditEvent.objects.filter(action="panel.refused", actor="user:operator").count() == 1


def test_kill_button_when_not_confirmed_then_asks_for_confirmation_and_changes_nothing(
    verified_client, spy
):
    # Act
    response = verified_client.post(reverse("panel:kill_switch"), {"reason": "runaway orders"})

    # Assert
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="kill-confirm"' in html
    assert "runaway orders" in html
    assert "csrfmiddlewaretoken" in html
    assert system_mode_get() is SystemMode.NORMAL
    assert "kill_switch_engage" not in spy


def test_kill_button_when_confirmed_then_kill_latched_orders_cancelled_positions_flat(
    verified_client, spy
):
    # Arrange
    account = trading_history_create(points=5)
    assert Position.objects.filter(account=account).exclude(quantity=0).exists()

    # Act
    response = _kill(verified_client, "runaway orders")

    # Assert
    assert response.status_code == 302
    assert system_mode_get() is SystemMode.KILL
    call = spy["kill_switch_engage"][-1]
    assert call == {"actor": "user:operator", "source": "panel", "reason": "runaway orders"}
    assert not Order.objects.filter(
        account=account, status__in=OPEN_STATUSES, reduce_only=False
    ).exists()
    assert Incident.objects.filter(status="open").count() == 1
    assert any("KILL engaged" in m for m in _messages(response))


def test_kill_button_when_reason_missing_then_refused(verified_client, spy):
    # Act
    response = verified_client.post(reverse("panel:kill_switch"), {"reason": "", "confirm": "on"})

    # Assert
    assert system_mode_get() is SystemMode.NORMAL
    assert "kill_switch_engage" not in spy
    assert any("refused" in m for m in _messages(response))


def test_resume_after_kill_when_incident_not_closed_then_refused_until_report_written_and_closed(
    verified_client,
):
    # Arrange
    _kill(verified_client)
    incident = Incident.objects.get(status="open")

    # Act 1: leave KILL with the incident open
    refused = verified_client.post(
        reverse("panel:mode_set"), {"mode": "observation", "reason": "all clear"}
    )

    # Assert 1
    assert system_mode_get() is SystemMode.KILL
    assert any("refused" in m for m in _messages(refused))

    # Act 2: closing without the report is refused too
    verified_client.post(reverse("panel:incident_close", args=[incident.id]))
    incident.refresh_from_db()
    assert incident.status == "open"

    # Act 3: write the report, close, resume to OBSERVATION
    verified_client.post(
        reverse("panel:incident_update", args=[incident.id]),
        {"what_happened": "orders looped", "cause": "bad config", "action_taken": "fixed config"},
    )
    verified_client.post(reverse("panel:incident_close", args=[incident.id]))
    incident.refresh_from_db()
    ok = verified_client.post(
        reverse("panel:mode_set"), {"mode": "observation", "reason": "reviewed"}
    )

    # Assert 3
    assert incident.status == "closed"
    assert incident.what_happened == "orders looped"
    assert system_mode_get() is SystemMode.OBSERVATION
    assert any("OBSERVATION" in m for m in _messages(ok))


def test_incident_pages_list_and_show_the_report_form(verified_client):
    # Arrange
    _kill(verified_client)
    incident = Incident.objects.get()

    # Act
    listing = verified_client.get(reverse("panel:incidents"))
    detail = verified_client.get(reverse("panel:incident", args=[incident.id]))

    # Assert
    assert listing.status_code == 200
    assert f'data-incident="{incident.id}"' in listing.content.decode()
    html = detail.content.decode()
    assert detail.status_code == 200
    assert 'name="what_happened"' in html
    assert 'name="cause"' in html
    assert 'name="action_taken"' in html
    assert 'id="incident-close"' in html


def test_risk_page_renders_limits_form_exposures_var_and_correlations(verified_client):
    # Arrange
    trading_history_create(points=30)

    # Act
    response = verified_client.get(reverse("panel:risk"))

    # Assert
    assert response.status_code == 200
    html = response.content.decode()
    for marker in ('id="limits-form"', 'id="exposures"', 'id="risk-var95"', 'id="correlations"'):
        assert marker in html
    assert "BTC-USD" in html


def test_limits_form_when_valid_then_saved_through_the_service(verified_client, spy):
    # Arrange
    account = trading_history_create(points=5)

    # Act
    response = verified_client.post(
        reverse("panel:limits_set"),
        {"account_id": account.id, "max_order_notional": "4000", "max_open_positions": "3"},
    )

    # Assert
    assert response.status_code == 302
    call = spy["risk_limit_set"][-1]
    assert call["account_id"] == account.id
    assert call["values"] == {"max_order_notional": "4000", "max_open_positions": "3"}
    assert call["actor"] == "user:operator"
    account.risk_limit.refresh_from_db()
    assert str(account.risk_limit.max_order_notional.normalize()) == "4E+3"


def test_limits_form_when_out_of_range_then_refused_and_unchanged(verified_client):
    # Arrange
    account = trading_history_create(points=5)
    verified_client.post(
        reverse("panel:limits_set"), {"account_id": account.id, "max_order_notional": "4000"}
    )

    # Act
    response = verified_client.post(
        reverse("panel:limits_set"), {"account_id": account.id, "max_order_notional": "1e12"}
    )

    # Assert
    account.risk_limit.refresh_from_db()
    assert account.risk_limit.max_order_notional == 4000
    assert any("refused" in m and "max_order_notional" in m for m in _messages(response))


def test_overview_shows_controls_alerts_and_daily_pnl(verified_client):
    # Arrange
    trading_history_create(points=10)
    alert_raise(severity="warning", code="feed.stale", message="BTC-USD feed stale", data={})

    # Act
    response = verified_client.get(reverse("panel:overview"))

    # Assert
    html = response.content.decode()
    snapshot = response.context["snapshot"]
    assert 'id="kill-form"' in html
    assert 'id="mode-form"' in html
    assert 'id="kpi-daily-pnl"' in html
    assert "daily_pnl_pct" in snapshot
    assert [a["code"] for a in snapshot["alerts"]] == ["feed.stale"]
