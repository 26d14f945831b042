"""Run one MCP server (market-data or trading) over stdio or streamable HTTP."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.process_metrics import process_metrics_start
from apps.mcp.models import McpAgent
from apps.mcp.server import KINDS, build_server, http_app
from apps.mcp.services import mcp_agent_authenticate


class Command(BaseCommand):
    help = (
        "Run an MCP server: `mcp_server market-data|trading --transport stdio|http`. stdio runs "
        "as one agent (--agent NAME, or its token in MCP_AGENT_TOKEN); http authenticates each "
        "request's bearer token (an agent's token; revoked: 401) and serves /mcp."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port", type=int, default=None, help="default 8001 (market-data), 8002 (trading)"
        )
        parser.add_argument("--agent", default=None, help="stdio: the agent's name")
        parser.add_argument(
            "--public-url",
            default=None,
            help="http: the URL clients use (default http://HOST:PORT/mcp)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = options["kind"]
        process_metrics_start(process=f"mcp-{kind}")
        if options["transport"] == "stdio":
            agent = self._stdio_agent(options["agent"])
            # stdout is the protocol: say nothing there.
            build_server(kind, agent_id=agent.pk).run("stdio")
            return
        import uvicorn

        port = options["port"] or (8001 if kind == "market-data" else 8002)
        host = options["host"]
        public_url = options["public_url"] or f"http://{host}:{port}/mcp"
        app = http_app(build_server(kind, public_url=public_url), host=host, public_url=public_url)
        self.stderr.write(f"mcp {kind}: streamable HTTP on {public_url} (bearer: agent tokens)")
        uvicorn.run(app, host=host, port=port, log_level="info")

    def _stdio_agent(self, name: str | None) -> McpAgent:
        if name:
            agent = McpAgent.objects.filter(name=name, revoked_at__isnull=True).first()
            if agent is None:
                raise CommandError(
                    f"--agent: no active agent named {name!r} (manage.py mcp_agent list)"
                )
            return agent
        token = os.environ.get("MCP_AGENT_TOKEN", "")
        found = mcp_agent_authenticate(token) if token else None
        if found is None:
            raise CommandError(
                "stdio needs an agent: --agent NAME, or MCP_AGENT_TOKEN set to an active agent's token"
            )
        return found
