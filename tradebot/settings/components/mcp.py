"""MCP servers (apps.mcp, docs/mcp.md)."""

from tradebot.env import env_number

# How long an approved order preview's confirmation token may be confirmed, seconds.
MCP_TICKET_TTL_SECONDS = env_number("MCP_TICKET_TTL_SECONDS", 30, int, minimum=1)
