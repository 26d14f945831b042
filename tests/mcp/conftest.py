"""Fixtures for the MCP servers: a paper account with limits, an instrument with a fresh bar,
and agents created through the service (their tokens as an operator would get them)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from mcp import Client

from apps.marketdata.models import Bar
from apps.mcp.models import McpAgent, Scope
from apps.mcp.server import build_server
from apps.mcp.services import mcp_agent_create
from tests.trading.factories import instrument, paper_account

ALL_SCOPES = list(Scope.values)


def fresh_bars(symbol: str = "BTC-USD", *, n: int = 5, close: str = "100") -> None:
    inst = instrument(symbol)
    now = timezone.now().replace(second=0, microsecond=0)
    for i in range(n):
        ts = now - timedelta(minutes=n - 1 - i)
        price = Decimal(close)
        Bar.objects.create(
            instrument=inst,
            timeframe="1m",
            ts=ts,
            open=price,
            high=price,
            low=price,
            close=price,
            volume=Decimal(1),
        )


@pytest.fixture
def market():  # noqa: ANN201
    account = paper_account(max_order="5000")
    fresh_bars()
    return account


def make_agent(account: Any, name: str = "bot", **kwargs: Any) -> tuple[McpAgent, str]:
    kwargs.setdefault("scopes", ALL_SCOPES)
    return mcp_agent_create(name=name, account=account, actor="test", **kwargs)


def in_process(kind: str, agent: McpAgent, body: Callable[[Client], Awaitable[Any]]) -> Any:
    """Run ``body`` with the SDK's Client connected in-process (no port) to the server,
    as the agent; the ORM calls run on this thread (the test's transaction)."""

    async def main() -> Any:
        async with Client(build_server(kind, agent_id=agent.pk)) as client:
            return await body(client)

    return async_to_sync(main)()


def call(kind: str, agent: McpAgent, tool: str, args: dict[str, Any] | None = None) -> Any:
    async def body(client: Client) -> Any:
        return await client.call_tool(tool, args or {})

    return in_process(kind, agent, body)


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def error_text(result: Any) -> str:
    """A tool error's message without the SDK's "Error executing tool NAME: " prefix."""
    return re.sub(r"^Error executing tool \w+: ", "", text_of(result))


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, as the client's task groups raise them."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]
