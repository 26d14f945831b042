"""Create, revoke and list the AI agents of the MCP servers."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Account
from apps.core.cli import cli_actor
from apps.mcp.models import McpAgent, Scope
from apps.mcp.services import McpInputError, mcp_agent_create, mcp_agent_revoke


class Command(BaseCommand):
    help = (
        "MCP agents: `create NAME --account A --scope S [--scope S ...]` prints the bearer token "
        "once (only its hash is kept); `revoke NAME` refuses the token from the next request; "
        "`list` shows every agent. Scopes: " + ", ".join(Scope.values)
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create an agent and print its token once")
        create.add_argument("name")
        create.add_argument("--account", required=True, help="the account it trades (by name)")
        create.add_argument(
            "--scope", action="append", dest="scopes", default=[], choices=Scope.values
        )
        create.add_argument("--max-order-notional", default=None, help="its own cap per order")
        create.add_argument("--max-orders-per-minute", type=int, default=5)
        create.add_argument("--instrument", action="append", dest="instruments", default=[])
        create.add_argument(
            "--live", action="store_true", help="allow a non-paper account (default: paper only)"
        )
        revoke = sub.add_parser("revoke", help="revoke an agent's token")
        revoke.add_argument("name")
        sub.add_parser("list", help="list the agents")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "create":
                self._create(options)
            elif action == "revoke":
                agent = mcp_agent_revoke(name=options["name"], actor=cli_actor())
                self.stdout.write(
                    f"agent {agent.name}: revoked at {agent.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
                )
            else:
                self._list()
        except McpInputError as exc:
            raise CommandError(str(exc)) from None

    def _create(self, options: dict[str, Any]) -> None:
        account = Account.objects.filter(name=options["account"]).first()
        if account is None:
            raise CommandError(f"account: no account named {options['account']!r}")
        cap = None
        if options["max_order_notional"] is not None:
            try:
                cap = Decimal(options["max_order_notional"])
            except InvalidOperation:
                raise CommandError("--max-order-notional: not a number") from None
        agent, token = mcp_agent_create(
            name=options["name"],
            account=account,
            scopes=options["scopes"],
            actor=cli_actor(),
            max_order_notional=cap,
            max_orders_per_minute=options["max_orders_per_minute"],
            instruments=options["instruments"],
            paper_only=not options["live"],
        )
        self.stdout.write(f"agent {agent.name} created (scopes {', '.join(agent.scopes)}).")
        self.stdout.write("Its token, shown this once (store it in the agent's secret store):")
        self.stdout.write(token)

    def _list(self) -> None:
        for agent in McpAgent.objects.select_related("account"):
            state = f"revoked {agent.revoked_at:%Y-%m-%d %H:%M}" if agent.revoked_at else "active"
            self.stdout.write(
                f"{agent.name}\t{agent.token_prefix}…\t{agent.account.name}\t{','.join(agent.scopes)}\t"
                f"paper_only={agent.paper_only}\tmax_order={agent.max_order_notional}\t"
                f"per_minute={agent.max_orders_per_minute}\t{state}"
            )
