from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.mcp.models import McpAgent
from apps.mcp.services import mcp_agent_authenticate
from tests.conftest import otp_login
from tests.mcp.conftest import make_agent
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db


def test_admin_lists_agents_without_their_token_and_revokes_them(client, django_user_model) -> None:
    agent, token = make_agent(paper_account())
    root = django_user_model.objects.create_superuser(username="root", password="pw-x-1")
    otp_login(client, root)

    listing = client.get("/admin/mcp/mcpagent/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "bot" in html
    assert token not in html
    assert agent.token_hash not in html
    assert client.get("/admin/mcp/mcpagent/add/").status_code == 403  # tokens come from the command

    response = client.post(
        "/admin/mcp/mcpagent/",
        {"action": "revoke", "_selected_action": [agent.pk]},
    )

    assert response.status_code == 302
    assert McpAgent.objects.get().revoked_at is not None
    assert mcp_agent_authenticate(token) is None
    assert AuditEvent.objects.get(action="mcp.agent_revoke").actor == "admin:root"
