"""The agents page: every agent, its recent activity, and a revoke button that works at once."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.mcp.services import mcp_agent_authenticate, mcp_call_audit
from tests.conftest import otp_login
from tests.mcp.conftest import make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model) -> Client:  # noqa: ANN001
    user = django_user_model.objects.create_user("operator", password="x" * 20, is_staff=True)
    client = Client(enforce_csrf_checks=False)
    otp_login(client, user)
    return client


def test_agents_page_when_agents_called_tools_then_lists_counts_and_last_calls(
    market, staff
) -> None:
    bot, _ = make_agent(market, "bot")
    make_agent(market, "reader", scopes=["market:read"])
    for verdict in ("ok", "ok", "denied", "refused"):
        mcp_call_audit(
            agent_name="bot", server="trading", tool="order_preview", arguments={}, verdict=verdict
        )

    page = staff.get(reverse("mcp:agents"))

    assert page.status_code == 200
    rows = {row["agent"].name: row for row in page.context["agents"]}
    assert (rows["bot"]["calls"], rows["bot"]["refused"]) == (4, 2)
    assert (rows["reader"]["calls"], rows["reader"]["refused"]) == (0, 0)
    body = page.content.decode()
    assert 'data-agent="bot"' in body
    assert "order_preview" in body
    assert reverse("mcp:agent_revoke", args=[bot.pk]) in body


def test_revoke_button_when_posted_then_the_token_stops_working_and_it_is_audited(
    market, staff
) -> None:
    bot, token = make_agent(market, "bot")
    assert mcp_agent_authenticate(token) is not None

    response = staff.post(reverse("mcp:agent_revoke", args=[bot.pk]))

    assert response.status_code == 302
    assert mcp_agent_authenticate(token) is None
    event = AuditEvent.objects.get(action="mcp.agent_revoke", target="bot")
    assert event.actor == "user:operator"
    assert staff.get(reverse("mcp:agents")).content.decode().count("Revoke</button>") == 0


def test_agents_page_when_not_verified_staff_or_bad_request_then_refused(market, staff) -> None:
    bot, token = make_agent(market, "bot")

    anonymous = Client().post(reverse("mcp:agent_revoke", args=[bot.pk]))
    get = staff.get(reverse("mcp:agent_revoke", args=[bot.pk]))
    missing = staff.post(reverse("mcp:agent_revoke", args=[99999]))
    csrf = Client(enforce_csrf_checks=True)
    csrf.cookies = staff.cookies
    forged = csrf.post(reverse("mcp:agent_revoke", args=[bot.pk]))

    assert anonymous.status_code == 302
    assert get.status_code == 405
    assert missing.status_code == 404
    assert forged.status_code == 403
    assert mcp_agent_authenticate(token) is not None  # still active
