"""The trading server as shipped (`manage.py mcp_server trading --transport http`) on loopback,
over streamable HTTP with real agent tokens: the SDK's token verifier, 401 for a revoked
token, the OAuth protected-resource metadata, and an order from preview to confirm."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from apps.audit.models import AuditEvent, DecisionLog
from apps.mcp.services import mcp_agent_revoke
from apps.trading.models import Order
from tests.integration.conftest import database_url, redis_url
from tests.loopback import free_port, http_get, server
from tests.mcp.conftest import fresh_bars, make_agent

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def post(url: str, body: bytes, token: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def trading_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": redis_url(),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = [
        sys.executable,
        str(ROOT / "manage.py"),
        "mcp_server",
        "trading",
        "--transport",
        "http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    base = f"http://127.0.0.1:{port}"
    with server(
        args,
        ready_url=f"{base}/.well-known/oauth-protected-resource/mcp",
        log=tmp_path / "mcp.log",
        env=env,
        cwd=ROOT,
    ):
        yield f"{base}/mcp"


def as_agent(url: str, token: str, body: Any) -> Any:
    async def main() -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            return await body(client)

    return async_to_sync(main)()


def test_order_over_streamable_http_with_a_real_token(trading_url: str) -> None:
    from tests.trading.factories import paper_account

    account = paper_account()
    fresh_bars()
    agent, token = make_agent(account)

    async def trade(client: Client) -> tuple[list[str], Any, Any, Any]:
        tools = [t.name for t in (await client.list_tools()).tools]
        preview = await client.call_tool(
            "order_preview", {"instrument": "BTC-USD", "side": "buy", "quantity": 2}
        )
        token = preview.structured_content["confirmation_token"]
        first = await client.call_tool("order_confirm", {"confirmation_token": token})
        again = await client.call_tool("order_confirm", {"confirmation_token": token})
        return tools, preview, first, again

    tools, preview, first, again = as_agent(trading_url, token, trade)

    assert "order_preview" in tools
    assert "mode_resume" not in tools
    assert preview.structured_content["verdict"] == "approved"
    assert first.structured_content["verdict"] == "sent"
    assert again.structured_content["verdict"] == "already_confirmed"
    order = Order.objects.get()
    assert order.quantity == 2
    assert first.structured_content["client_order_id"] == order.client_order_id
    assert DecisionLog.objects.get().source == f"mcp:{agent.name}"
    verdicts = list(
        AuditEvent.objects.filter(action="mcp.tool_call", actor="mcp:bot")
        .order_by("id")
        .values_list("target", "data__verdict")
    )
    assert verdicts == [
        ("order_preview", "approved"),
        ("order_confirm", "sent"),
        ("order_confirm", "already_confirmed"),
    ]
    status, body = http_get(trading_url.replace("/mcp", "/metrics"))
    assert status == 200
    text = body.decode()
    assert (
        'mcp_tool_calls_total{agent="bot",server="trading",tool="order_confirm",verdict="sent"} 1.0'
        in text
    )
    assert (
        'mcp_tool_latency_seconds_count{agent="bot",server="trading",tool="order_preview"} 1.0'
        in text
    )


def test_missing_unknown_or_revoked_token_is_401_and_metadata_is_served(trading_url: str) -> None:
    from tests.trading.factories import paper_account

    account = paper_account()
    _, token = make_agent(account)
    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()

    status, metadata = http_get(
        trading_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    )
    assert status == 200
    assert json.loads(metadata)["resource"] == trading_url

    status, headers, _ = post(trading_url, ping, None)
    assert status == 401
    assert "resource_metadata" in headers.get(
        "www-authenticate", headers.get("WWW-Authenticate", "")
    )
    assert post(trading_url, ping, "tbm_not-a-token")[0] == 401

    mcp_agent_revoke(name="bot", actor="test")
    assert post(trading_url, ping, token)[0] == 401


def test_malformed_json_rpc_and_a_huge_body_are_refused_and_nothing_created(
    trading_url: str,
) -> None:
    from tests.trading.factories import paper_account

    account = paper_account()
    _, token = make_agent(account)

    status, _, body = post(trading_url, b'{"jsonrpc": "2.0", "id": 1, "method": ', token)
    assert status == 400
    assert b"Traceback" not in body

    huge = json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "order_preview", "arguments": {"instrument": "x" * (5 * 1024 * 1024)}}}
    ).encode()  # fmt: skip
    response = httpx.post(
        trading_url,
        content=huge,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
        timeout=10,
    )
    assert response.status_code == 413
    assert Order.objects.count() == 0
