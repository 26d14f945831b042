"""`manage.py mcp_agent` (the token printed once, hashed at rest, revoked) and
`manage.py mcp_server ... --transport stdio` spoken to by the SDK's Client as a subprocess."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management import CommandError, call_command
from mcp import Client, StdioServerParameters

from apps.audit.models import AuditEvent
from apps.mcp.models import McpAgent
from apps.mcp.services import mcp_agent_authenticate, token_hash
from tests.integration.conftest import database_url, redis_url
from tests.mcp.conftest import fresh_bars, make_agent
from tests.trading.factories import paper_account

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("mcp_agent", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_create_prints_the_token_once_keeps_only_its_hash_and_revoke_refuses_it() -> None:
    paper_account()

    fresh_bars()
    out = run(
        "create", "claude", "--account", "paper", "--scope", "market:read",
        "--max-order-notional", "250", "--instrument", "BTC-USD",
    )  # fmt: skip

    token = out.strip().splitlines()[-1]
    assert token.startswith("tbm_")
    agent = McpAgent.objects.get(name="claude")
    assert agent.token_hash == token_hash(token)
    assert token not in str(McpAgent.objects.values().get())  # only the hash is stored
    assert agent.paper_only is True
    assert agent.instruments == ["BTC-USD"]
    assert str(agent.max_order_notional) == "250.000000000000"
    assert mcp_agent_authenticate(token) == agent
    assert token not in run("list")
    assert "claude" in run("list")

    run("revoke", "claude")

    assert mcp_agent_authenticate(token) is None
    assert "revoked" in run("list")
    assert AuditEvent.objects.filter(action="mcp.agent_revoke", target="claude").exists()


@pytest.mark.django_db
def test_create_with_a_bad_scope_or_unknown_account_says_which() -> None:
    paper_account()
    with pytest.raises(CommandError, match="account"):
        run("create", "x", "--account", "nope", "--scope", "market:read")
    with pytest.raises(CommandError, match="instruments: unknown"):
        run("create", "x", "--account", "paper", "--scope", "market:read", "--instrument", "NOPE")
    assert not McpAgent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_stdio_server_runs_as_the_agent_of_mcp_agent_token() -> None:
    account = paper_account()
    fresh_bars()
    _, token = make_agent(account, scopes=["market:read"])
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": redis_url(),
        "MCP_AGENT_TOKEN": token,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(ROOT / "manage.py"), "mcp_server", "market-data", "--transport", "stdio"],
        env=env,
        cwd=ROOT,
    )

    async def main() -> Any:
        async with Client(params) as client:
            return await client.call_tool("bars_latest", {"instrument": "BTC-USD"})

    result = async_to_sync(main)()

    assert not result.is_error
    assert result.structured_content["bars"][0]["close"] == "100.000000000000"
    assert AuditEvent.objects.get(action="mcp.tool_call").actor == "mcp:bot"
