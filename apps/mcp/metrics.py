"""Prometheus metrics of the MCP servers, served at /metrics of each HTTP server (scraped by
the job ``mcp-servers``: mcp-market-data:8001, mcp-trading:8002).

- ``mcp_tool_calls_total{server,tool,agent,verdict}``: every tool call and how it ended
  (``ok``, ``approved``, ``denied``, ``hold``, ``sent``, ``already_confirmed``,
  ``cancelled``, ``refused``, ``error``).
- ``mcp_denials_total{server,tool,agent,reason}``: denials by reason: the name of each
  failed check (``max_order_notional``, ``mode_gate``, ``agent_order_rate``...), ``scope``
  for a missing scope, ``bad_input`` for a tool error.
- ``mcp_tool_latency_seconds{server,tool,agent}``: the call's time in the server.

Labels are bounded: ``tool`` is a registered tool's name or ``unknown``; agents are the
operators' few named agents.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

# Its own registry: the default one holds the apps' collectors that read the database at
# scrape time (the web's /metrics), which have no place here (nor in an event loop).
REGISTRY = CollectorRegistry(auto_describe=True)

CALLS = Counter(
    "mcp_tool_calls_total",
    "MCP tool calls by verdict",
    ["server", "tool", "agent", "verdict"],
    registry=REGISTRY,
)
DENIALS = Counter(
    "mcp_denials_total",
    "MCP tool calls denied or refused, by reason",
    ["server", "tool", "agent", "reason"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "mcp_tool_latency_seconds",
    "Time to answer an MCP tool call",
    ["server", "tool", "agent"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)


def call_observe(
    *, server: str, tool: str, agent: str, verdict: str, seconds: float, reasons: Iterable[str]
) -> None:
    CALLS.labels(server, tool, agent, verdict).inc()
    LATENCY.labels(server, tool, agent).observe(seconds)
    for reason in reasons:
        DENIALS.labels(server, tool, agent, reason).inc()
