"""The two MCP servers (official SDK, ``mcp.server.mcpserver.MCPServer``).

``market-data`` registers read tools only; ``trading`` registers order preview/confirm,
order listing, positions and the two stop controls (never resume, limits or plans).
Each call runs as one agent: the stdio/in-process server's configured agent, or over
HTTP the agent whose bearer token the SDK's auth middleware verified
(``AgentTokenVerifier``). Every call, refused ones and unknown tools included, leaves
one audit row (``apps.mcp.services.mcp_call_audit``).

No ``from __future__ import annotations`` here: the SDK reads the tools' annotations at
registration to build their input and output schemas.
"""

import contextvars
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, ToolAnnotations
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from apps.mcp import metrics, selectors, services
from apps.mcp.models import McpAgent, Scope
from apps.mcp.services import ConfirmResult, McpInputError, McpRefused, PreviewResult
from apps.risk.exceptions import ModeChangeRefused

logger = logging.getLogger(__name__)

Kind = Literal["market-data", "trading"]
KINDS: tuple[str, ...] = ("market-data", "trading")
T = TypeVar("T")

_agent: contextvars.ContextVar[McpAgent | None] = contextvars.ContextVar("mcp_agent", default=None)

# The SDK words a tool's ToolError "Error executing tool NAME: <ours>"; the audit keeps ours.
_SDK_PREFIX = re.compile(r"^Error executing tool \S+: ")

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)


class AgentTokenVerifier:
    """Bearer tokens are agents' tokens (hashed in McpAgent); a revoked one is refused (401)."""

    async def verify_token(self, token: str) -> AccessToken | None:
        agent = await sync_to_async(_authenticate)(token)
        if agent is None:
            return None
        return AccessToken(
            token=token, client_id=agent.name, scopes=list(agent.scopes), subject=str(agent.pk)
        )


def _authenticate(token: str) -> McpAgent | None:
    close_old_connections()
    return services.mcp_agent_authenticate(token)


def current_agent() -> McpAgent:
    agent = _agent.get()
    if agent is None:  # pragma: no cover - call_tool always sets it
        raise ToolError("agent: no agent for this call")
    return agent


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ORM code off the event loop; an agent's mistake becomes a tool error naming the field."""
    try:
        return await sync_to_async(fn)(*args, **kwargs)
    except (McpInputError, McpRefused, ModeChangeRefused) as exc:
        raise ToolError(str(exc)) from exc


async def run_resource(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await sync_to_async(fn)(*args, **kwargs)
    except (McpInputError, McpRefused) as exc:
        raise ResourceError(str(exc)) from exc


class AgentServer(MCPServer[Any]):
    """An MCPServer whose every tool call is made as one agent and audited."""

    def __init__(self, kind: str, *, agent_id: int | None, **kwargs: Any) -> None:
        super().__init__(f"tradebot-{kind}", **kwargs)
        self.kind = kind
        self.agent_id = agent_id

    def _agent_load(self) -> McpAgent:
        agent_id = self.agent_id
        if agent_id is None:
            close_old_connections()  # a long-running HTTP server: drop a dead connection
            token = get_access_token()
            if token is None or token.subject is None:
                raise McpRefused("authorization: no agent token on this request")
            agent_id = int(token.subject)
        return services.mcp_agent_fresh(agent_id)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        started = time.perf_counter()
        try:
            agent = await sync_to_async(self._agent_load)()
        except McpRefused as exc:
            await self._audit_refused(exc, name, arguments)
            raise ToolError(str(exc)) from exc
        tool = name if name in TOOL_SCOPES else "unknown"
        scope = TOOL_SCOPES.get(name)
        if scope is not None and scope not in agent.scopes:
            message = f"scope: agent {agent.name!r} lacks '{scope}' for {name} (ask an operator)"
            await self._audit(agent, name, arguments, "refused", message)
            self._observe(agent, tool, "refused", started, ["scope"])
            raise ToolError(message)
        token = _agent.set(agent)
        try:
            result = await super().call_tool(name, arguments, context)
        except Exception as exc:
            await self._audit(agent, name, arguments, "error", _SDK_PREFIX.sub("", str(exc)))
            self._observe(agent, tool, "error", started, ["bad_input"])
            raise
        finally:
            _agent.reset(token)
        verdict, detail, reasons = "ok", "", []
        if isinstance(result, CallToolResult):
            if result.is_error:
                verdict, reasons = "error", ["bad_input"]
                detail = " ".join(getattr(c, "text", "") for c in result.content)
                detail = _SDK_PREFIX.sub("", detail)
            elif isinstance(result.structured_content, dict):
                body = result.structured_content
                verdict = str(body.get("verdict", "ok"))
                detail = str(body.get("reason", ""))
                if verdict == "denied":
                    reasons = [
                        str(c["name"]) for c in body.get("checks") or () if not c.get("passed")
                    ] or [detail.split(":", 1)[0] or "denied"]
        await self._audit(agent, name, arguments, verdict, detail)
        self._observe(agent, tool, verdict, started, reasons)
        return result

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        """A resource read is a call too: the agent, market:read, one audit row."""
        started = time.perf_counter()
        try:
            agent = await sync_to_async(self._agent_load)()
        except McpRefused as exc:
            await self._audit_refused(exc, f"resource:{str(uri)[:200]}", {})
            raise ResourceError(str(exc)) from exc
        target = f"resource:{str(uri)[:200]}"
        if Scope.MARKET_READ not in agent.scopes:
            message = f"scope: agent {agent.name!r} lacks 'market:read' to read resources"
            await self._audit(agent, target, {}, "refused", message)
            self._observe(agent, "resource", "refused", started, ["scope"])
            raise ResourceError(message)
        try:
            result = await super().read_resource(uri, context)
        except Exception as exc:
            await self._audit(agent, target, {}, "error", str(exc))
            self._observe(agent, "resource", "error", started, ["bad_input"])
            raise
        await self._audit(agent, target, {}, "ok", "")
        self._observe(agent, "resource", "ok", started, [])
        return result

    def _observe(
        self, agent: McpAgent, tool: str, verdict: str, started: float, reasons: list[str]
    ) -> None:
        metrics.call_observe(
            server=self.kind,
            tool=tool,
            agent=agent.name,
            verdict=verdict,
            seconds=time.perf_counter() - started,
            reasons=reasons,
        )

    async def _audit_refused(self, exc: McpRefused, tool: str, arguments: dict[str, Any]) -> None:
        """A refused agent (revoked since it connected) is audited under its name."""
        if exc.agent_name:
            await sync_to_async(services.mcp_call_audit)(
                agent_name=exc.agent_name,
                server=self.kind,
                tool=tool[:100],
                arguments=arguments,
                verdict="refused",
                detail=str(exc),
            )

    async def _audit(
        self, agent: McpAgent, tool: str, arguments: dict[str, Any], verdict: str, detail: str
    ) -> None:
        await sync_to_async(services.mcp_call_audit)(
            agent_name=agent.name,
            server=self.kind,
            tool=tool[:100],
            arguments=arguments,
            verdict=verdict,
            detail=detail,
        )


TOOL_SCOPES: dict[str, str] = {
    "instruments": Scope.MARKET_READ,
    "bars": Scope.MARKET_READ,
    "bars_latest": Scope.MARKET_READ,
    "feeds": Scope.MARKET_READ,
    "system_mode": Scope.MARKET_READ,
    "positions": Scope.MARKET_READ,
    "ml_latest": Scope.MARKET_READ,
    "decisions": Scope.MARKET_READ,
    "orders_open": Scope.MARKET_READ,
    "order_preview": Scope.ORDERS_PREVIEW,
    "order_confirm": Scope.ORDERS_SUBMIT,
    "order_cancel": Scope.ORDERS_SUBMIT,
    "mode_request_pause": Scope.CONTROL_PAUSE,
    "kill_switch": Scope.CONTROL_PAUSE,
}


def _register_market_data(server: AgentServer) -> None:
    @server.resource(
        "tradebot://instruments",
        name="instruments",
        description="Every instrument with its trading plans",
        mime_type="application/json",
    )
    async def instruments_resource() -> str:
        return json.dumps(await run_resource(selectors.instruments_list))

    @server.resource(
        "tradebot://instruments/{symbol}",
        name="instrument",
        description="One instrument with its trading plans and its latest 1m bar",
        mime_type="application/json",
    )
    async def instrument_resource(symbol: str) -> str:
        return json.dumps(await run_resource(selectors.instrument_detail, symbol=symbol))

    @server.tool(annotations=READ)
    async def instruments() -> list[selectors.InstrumentInfo]:
        """Every instrument with its trading plans (account, timeframe, strategy, stake)."""
        return await run(selectors.instruments_list)

    @server.tool(annotations=READ)
    async def bars(
        instrument: str, timeframe: str = "1m", limit: int = 100, before: str | None = None
    ) -> selectors.BarsPage:
        """OHLCV bars, oldest first: at most 500 per page ending before `before` (ISO time);
        page back with the returned `next_before`."""
        return await run(
            selectors.bars_page,
            instrument=instrument,
            timeframe=timeframe,
            limit=limit,
            before=before,
        )

    @server.tool(annotations=READ)
    async def bars_latest(instrument: str, timeframe: str = "1m") -> selectors.BarsPage:
        """The instrument's latest bar of the timeframe."""
        return await run(
            selectors.bars_page, instrument=instrument, timeframe=timeframe, limit=1, before=None
        )

    @server.tool(annotations=READ)
    async def feeds() -> list[selectors.FeedInfo]:
        """Market data feed freshness: last update, last bar and age in seconds per feed."""
        return await run(selectors.feeds_freshness)

    @server.tool(annotations=READ)
    async def system_mode() -> str:
        """The system mode: NORMAL, OBSERVATION, PAUSE or KILL."""
        return await run(selectors.mode_get)

    @server.tool(annotations=READ)
    async def positions() -> dict[str, Any]:
        """This agent's account: positions and P&L totals."""
        return await run(selectors.positions_summary, current_agent())

    @server.tool(annotations=READ)
    async def ml_latest(instrument: str) -> dict[str, Any]:
        """The ML model's latest probability for the instrument and its latest calibration."""
        return await run(selectors.ml_latest, instrument=instrument)

    @server.tool(annotations=READ)
    async def decisions(
        instrument: str | None = None, source: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The decision log of this agent's account, newest first (at most 100), with every check."""
        return await run(
            selectors.decisions_list,
            agent=current_agent(),
            instrument=instrument,
            source=source,
            limit=limit,
        )


def _register_trading(server: AgentServer) -> None:
    @server.tool()
    async def order_preview(instrument: str, side: str, quantity: str | float) -> PreviewResult:
        """Run the full pre-trade check and mode gate on a market order (side 'buy' enters
        long, 'sell' exits the whole long), plus this agent's limits. Places nothing.
        An approved preview returns a single-use `confirmation_token` valid for a few seconds."""
        return await run(
            services.order_preview,
            agent=current_agent(),
            instrument=instrument,
            side=side,
            quantity=quantity,
        )

    @server.tool()
    async def order_confirm(confirmation_token: str) -> ConfirmResult:
        """Send the previewed order through the engine's decision path (checks and mode gate
        again, now). Idempotent: confirming the same token again returns the same order."""
        return await run(
            services.order_confirm, agent=current_agent(), confirmation_token=confirmation_token
        )

    @server.tool()
    async def order_cancel(client_order_id: str, reason: str = "") -> dict[str, Any]:
        """Cancel one of this agent's own open orders (by its client_order_id)."""
        return await run(
            services.order_cancel,
            agent=current_agent(),
            client_order_id=client_order_id,
            reason=reason,
        )

    @server.tool(annotations=READ)
    async def orders_open() -> list[dict[str, Any]]:
        """This agent's account's working orders."""
        return await run(selectors.orders_open, current_agent())

    @server.tool(annotations=READ)
    async def positions() -> dict[str, Any]:
        """This agent's account: positions and P&L totals."""
        return await run(selectors.positions_summary, current_agent())

    @server.tool()
    async def mode_request_pause(reason: str) -> str:
        """Ask for PAUSE: no new entries (exits still allowed). An agent can never resume."""
        return await run(services.mode_request_pause, agent=current_agent(), reason=reason)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    async def kill_switch(reason: str) -> dict[str, Any]:
        """Engage the kill switch: KILL latched, every order cancelled, every position closed.
        Only an operator with two-factor login can leave KILL."""
        return await run(services.kill_switch, agent=current_agent(), reason=reason)


def build_server(
    kind: str,
    *,
    agent_id: int | None = None,
    public_url: str | None = None,
    issuer_url: str | None = None,
) -> AgentServer:
    """The ``kind`` server. With ``agent_id`` every call is that agent's (stdio, in-process);
    without, each HTTP request's bearer token names it (``public_url``: this server's URL,
    announced in the OAuth protected-resource metadata)."""
    if kind not in KINDS:
        raise ValueError(f"unknown MCP server {kind!r}: use one of {', '.join(KINDS)}")
    extra: dict[str, Any] = {}
    if agent_id is None:
        if not public_url:
            raise ValueError("an HTTP server needs its public_url (e.g. http://127.0.0.1:8001/mcp)")
        extra = {
            "token_verifier": AgentTokenVerifier(),
            "auth": AuthSettings(
                issuer_url=issuer_url or public_url,  # type: ignore[arg-type]
                resource_server_url=public_url,  # type: ignore[arg-type]
                validate_token_resource=False,  # agent tokens are this server's own
            ),
        }
    server = AgentServer(
        kind,
        agent_id=agent_id,
        instructions=(
            "Tradebot market data (read-only)."
            if kind == "market-data"
            else "Tradebot trading: preview an order, then confirm its token. Every order goes "
            "through the engine's risk checks and mode gate."
        ),
        **extra,
    )
    if agent_id is None:

        @server.custom_route("/metrics", methods=["GET"])
        async def metrics_view(request: Request) -> Response:
            """Prometheus (internal network only, like the job that scrapes it)."""
            return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    if kind == "market-data":
        _register_market_data(server)
    else:
        _register_trading(server)
    return server


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def http_app(server: AgentServer, *, host: str, public_url: str | None = None) -> Starlette:
    """The streamable HTTP ASGI app (stateless, JSON responses; one agent per request).

    Bound to loopback, the SDK accepts only loopback Host headers (DNS rebinding
    protection); behind a proxy the public URL's host is accepted as well.
    """
    security = None
    public = urlsplit(public_url) if public_url else None
    if host in LOOPBACK and public is not None and public.hostname not in LOOPBACK:
        origin = f"{public.scheme}://{public.netloc}"
        security = TransportSecuritySettings(
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", public.netloc],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", origin],
        )
    return server.streamable_http_app(
        stateless_http=True, json_response=True, host=host, transport_security=security
    )
