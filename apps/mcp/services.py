"""The MCP servers' writes: agents (create, revoke, authenticate), the audit of every tool call,
order preview and confirm through the engine's own decision path, pause and the kill switch."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account, Broker
from apps.audit.models import DecisionAction, DecisionLog
from apps.audit.services import audit_record
from apps.marketdata.models import Instrument
from apps.mcp.models import McpAgent, McpTicket, Scope
from apps.model.intents import entry_intent, exit_intent
from apps.model.orders import OPEN_STATUSES
from apps.risk.domain.checks import order_check
from apps.risk.domain.modes import SystemMode
from apps.risk.services.limits import risk_limits_from
from apps.risk.services.modes import system_mode_set, system_state_get
from apps.strategies.domain.base import Signal, SignalAction
from apps.strategies.domain.sizing import quantity_for_stake
from apps.trading.selectors import decision_inputs, risk_context_for
from apps.trading.services.cancel import OrderCancelRefused
from apps.trading.services.cancel import order_cancel as trading_order_cancel
from apps.trading.services.common import DB_QUANTUM, instrument_spec
from apps.trading.services.decisions import decision_make
from apps.trading.services.kill_switch import kill_switch_engage

TOKEN_PREFIX = "tbm_"  # noqa: S105 - a marker, not a secret


def ticket_ttl_seconds() -> int:
    """How long a preview's confirmation token may be confirmed (MCP_TICKET_TTL_SECONDS, 30)."""
    return int(settings.MCP_TICKET_TTL_SECONDS)


# The largest quantity an agent may ask for (a typo guard; the risk limits decide the rest).
MAX_QUANTITY = Decimal("1e12")
AUDIT_ARGUMENTS_MAX_CHARS = 4000


class McpInputError(ValueError):
    """Bad input from an agent: ``field`` names what was wrong, ``message`` what to do."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class McpRefused(Exception):
    """A request the agent may not make (scope, revoked...): said plainly. ``agent_name``:
    the agent refused, when known (its refusal is audited under its name)."""

    def __init__(self, message: str, *, agent_name: str = "") -> None:
        super().__init__(message)
        self.agent_name = agent_name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- agents -----------------------------------------------------------------------------------


def mcp_agent_create(
    *,
    name: str,
    account: Account,
    scopes: list[str],
    actor: str,
    max_order_notional: Decimal | None = None,
    max_orders_per_minute: int = 5,
    instruments: list[str] | None = None,
    paper_only: bool = True,
) -> tuple[McpAgent, str]:
    """Create an agent; return it and its token (shown this once: only its hash is kept)."""
    name = name.strip()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise McpInputError("name", "1-64 letters, digits, '-', '_' or '.'")
    if McpAgent.objects.filter(name=name).exists():
        raise McpInputError(
            "name", f"an agent named {name!r} exists already (revoke it or pick another)"
        )
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise McpInputError(
            "scopes", f"use some of {', '.join(Scope.values)}; got {unknown or 'none'}"
        )
    if max_order_notional is not None and not (
        max_order_notional.is_finite() and max_order_notional > 0
    ):
        raise McpInputError("max_order_notional", "must be a positive amount")
    if max_orders_per_minute < 1:
        raise McpInputError("max_orders_per_minute", "must be at least 1")
    symbols = sorted(set(instruments or []))
    known = set(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", flat=True))
    if set(symbols) - known:
        raise McpInputError("instruments", f"unknown: {', '.join(sorted(set(symbols) - known))}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        agent = McpAgent.objects.create(
            name=name,
            token_hash=token_hash(token),
            token_prefix=token[:12],
            scopes=sorted(set(scopes)),
            account=account,
            max_order_notional=max_order_notional,
            max_orders_per_minute=max_orders_per_minute,
            instruments=symbols,
            paper_only=paper_only,
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="mcp.agent_create",
            target=name,
            data={"scopes": agent.scopes, "account": account.name, "paper_only": paper_only},
        )
    return agent, token


def mcp_agent_revoke(*, name: str, actor: str) -> McpAgent:
    """Revoke an agent's token at once (its next request is refused, 401 over HTTP)."""
    with transaction.atomic():
        agent = McpAgent.objects.select_for_update().filter(name=name).first()
        if agent is None:
            raise McpInputError("name", f"no agent named {name!r} (see `manage.py mcp_agent list`)")
        if agent.revoked_at is None:
            agent.revoked_at = timezone.now()
            agent.save(update_fields=["revoked_at"])
            audit_record(actor=actor, action="mcp.agent_revoke", target=name, data={})
    return agent


def mcp_agent_authenticate(token: str) -> McpAgent | None:
    """The live (not revoked) agent holding ``token``, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return (
        McpAgent.objects.select_related("account")
        .filter(token_hash=token_hash(token), revoked_at__isnull=True)
        .first()
    )


def mcp_agent_fresh(agent_id: int) -> McpAgent:
    """The agent as stored now; refused when revoked since the session began."""
    agent = McpAgent.objects.select_related("account").get(pk=agent_id)
    if agent.revoked_at is not None:
        raise McpRefused(
            f"agent {agent.name!r} was revoked at {agent.revoked_at:%Y-%m-%d %H:%M:%S} UTC",
            agent_name=agent.name,
        )
    return agent


def mcp_call_audit(
    *,
    agent_name: str,
    server: str,
    tool: str,
    arguments: dict[str, Any],
    verdict: str,
    detail: str = "",
) -> None:
    """One audit row per tool call: agent, tool, arguments (bounded), verdict."""
    text = json.dumps(arguments, default=str, sort_keys=True)
    args: Any = (
        arguments
        if len(text) <= AUDIT_ARGUMENTS_MAX_CHARS
        else {"truncated": text[:AUDIT_ARGUMENTS_MAX_CHARS]}
    )
    audit_record(
        actor=f"mcp:{agent_name}",
        action="mcp.tool_call",
        target=tool,
        data={"server": server, "arguments": args, "verdict": verdict, "detail": detail[:2000]},
    )
    McpAgent.objects.filter(name=agent_name).update(last_used_at=timezone.now())


def scope_require(agent: McpAgent, scope: str) -> None:
    if scope not in agent.scopes:
        raise McpRefused(
            f"scope: agent {agent.name!r} lacks '{scope}' (ask an operator to grant it)"
        )


# --- parsing --------------------------------------------------------------------------------


def instrument_parse(symbol: str) -> Instrument:
    if not symbol or len(symbol) > 32:
        raise McpInputError(
            "instrument", "a symbol of 1 to 32 characters (see the instruments tool)"
        )
    instrument = Instrument.objects.filter(symbol=symbol).first()
    if instrument is None:
        raise McpInputError(
            "instrument", f"unknown instrument {symbol[:40]!r} (see the instruments tool)"
        )
    return instrument


def quantity_parse(raw: object) -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise McpInputError("quantity", f"not a number: {str(raw)[:40]!r}") from None
    if not value.is_finite():
        raise McpInputError("quantity", f"must be finite, got {value}")
    if value <= 0:
        raise McpInputError("quantity", f"must be greater than 0, got {value}")
    if value > MAX_QUANTITY:
        raise McpInputError("quantity", f"must be at most {MAX_QUANTITY}, got {value}")
    quantized = value.quantize(DB_QUANTUM, rounding=ROUND_DOWN)
    if quantized <= 0:
        raise McpInputError("quantity", f"rounds to 0 at {DB_QUANTUM} precision")
    return quantized


def side_parse(raw: str) -> str:
    if raw not in ("buy", "sell"):
        raise McpInputError(
            "side", f"use 'buy' (enter long) or 'sell' (exit the long), got {raw[:20]!r}"
        )
    return raw


# --- preview and confirm ----------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewResult:
    verdict: str  # "approved", "denied", "hold"
    reason: str
    instrument: str
    side: str
    quantity: str
    price: str | None
    notional: str | None
    mode: str
    checks: list[dict[str, Any]]
    confirmation_token: str | None
    expires_at: str | None


def _agent_checks(
    agent: McpAgent, *, symbol: str, notional: Decimal | None, side: str, now: Any
) -> list[dict[str, Any]]:
    """The agent's own limits, on top of the account's (same shape as the engine's checks)."""
    paper = agent.account.broker == Broker.PAPER
    checks = [
        {
            "name": "agent_paper_only",
            "passed": paper or not agent.paper_only,
            "detail": f"account {agent.account.name} is {agent.account.broker}"
            + (" (agent is paper-only)" if agent.paper_only else ""),
            "values": {"broker": agent.account.broker, "paper_only": str(agent.paper_only)},
        },
        {
            "name": "agent_instruments",
            "passed": not agent.instruments or symbol in agent.instruments,
            "detail": f"{symbol} {'allowed' if not agent.instruments or symbol in agent.instruments else 'not in the agent list'}",
            "values": {"allowed": ",".join(agent.instruments) or "all"},
        },
    ]
    if side == "buy" and agent.max_order_notional is not None:
        ok = notional is not None and notional <= agent.max_order_notional
        checks.append(
            {
                "name": "agent_max_order_notional",
                "passed": ok,
                "detail": f"notional {notional} {'<=' if ok else '>'} agent limit {agent.max_order_notional}",
                "values": {"notional": str(notional), "limit": str(agent.max_order_notional)},
            }
        )
    recent = (
        McpTicket.objects.filter(
            agent=agent, confirmed_at__gte=now - timedelta(seconds=60), order__isnull=False
        )
        .exclude(verdict="denied")  # as the account's rate check: denied orders never left
        .count()
    )
    checks.append(
        {
            "name": "agent_order_rate",
            "passed": recent < agent.max_orders_per_minute,
            "detail": f"{recent} orders in the last minute, limit {agent.max_orders_per_minute}",
            "values": {
                "orders_last_minute": str(recent),
                "limit": str(agent.max_orders_per_minute),
            },
        }
    )
    return checks


def order_preview(
    *, agent: McpAgent, instrument: str, side: str, quantity: object
) -> PreviewResult:
    """Run the engine's pre-trade checks and mode gate and the agent's limits on the order,
    creating no order and no decision; an approved preview carries a single-use
    confirmation token (bound to this agent and this exact order, MCP_TICKET_TTL_SECONDS long)."""
    scope_require(agent, Scope.ORDERS_PREVIEW)
    side = side_parse(side)
    qty = quantity_parse(quantity)
    inst = instrument_parse(instrument)
    now = timezone.now()
    known = decision_inputs(
        account_id=agent.account_id,
        symbol=inst.symbol,
        open_statuses=OPEN_STATUSES,
        now=now,
        last_close=True,
    )
    mode = SystemMode(known.mode if known.mode is not None else system_state_get().mode)
    position = known.position_quantity
    price = known.last_close
    base = dict(instrument=inst.symbol, side=side, mode=mode.value)

    def result(
        verdict: str,
        reason: str,
        checks: list[dict[str, Any]],
        q: Decimal,
        token: str | None = None,
        expires: Any = None,
    ) -> PreviewResult:
        return PreviewResult(
            verdict=verdict,
            reason=reason,
            quantity=str(q),
            price=None if price is None else str(price),
            notional=None if price is None else str((q * price).quantize(DB_QUANTUM)),
            checks=checks,
            confirmation_token=token,
            expires_at=None if expires is None else expires.isoformat(),
            **base,
        )

    if price is None or known.last_close_ts is None:
        return result("denied", "reference_price: no stored bar for this instrument", [], qty)
    hold = ""
    if known.working:
        hold = "an order for this instrument is still working"
    elif side == "buy" and position > 0:
        hold = "already long (the engine does not add to a long)"
    elif side == "sell" and position <= 0:
        hold = "no long position to exit"
    if hold:
        return result("hold", hold, [], qty)
    limits = risk_limits_from(known.limit)
    if side == "buy":
        sized = quantity_for_stake(qty * price, price, instrument_spec(inst)).quantize(
            DB_QUANTUM, rounding=ROUND_DOWN
        )
        if sized != qty:
            raise McpInputError(
                "quantity", f"{qty} is not a multiple of the lot size; ask for {sized}"
            )
        intent = entry_intent(
            instrument=inst.symbol, quantity=qty, decision_price=price, reason="mcp"
        )
    else:
        if qty != position:
            raise McpInputError(
                "quantity", f"a sell exits the whole long position: ask for {position}, got {qty}"
            )
        intent = exit_intent(
            instrument=inst.symbol, position_quantity=position, decision_price=price, reason="mcp"
        )
    age = max(0.0, (now - known.last_close_ts).total_seconds())
    ctx = risk_context_for(
        known=known,
        mode=mode,
        last_price=price,
        position_quantity=position,
        limits=limits,
        now=now,
        reference_ts=known.last_close_ts,
        reference_age_seconds=age,
    )
    risk = order_check(intent=intent, ctx=ctx, limits=limits)
    checks = [
        {"name": c.name, "passed": c.passed, "detail": c.detail, "values": dict(c.values)}
        for c in risk.checks
    ]
    checks += _agent_checks(agent, symbol=inst.symbol, notional=qty * price, side=side, now=now)
    failed = [c for c in checks if not c["passed"]]
    if failed:
        reason = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
        return result("denied", reason, checks, qty)
    token = secrets.token_urlsafe(24)
    expires = now + timedelta(seconds=ticket_ttl_seconds())
    McpTicket.objects.create(
        token_hash=token_hash(token),
        agent=agent,
        instrument=inst,
        side=side,
        quantity=qty,
        expires_at=expires,
    )
    return result("approved", "", checks, qty, token, expires)


@dataclass(frozen=True)
class ConfirmResult:
    verdict: str  # "sent", "denied", "hold", "observation", "already_confirmed"
    reason: str
    client_order_id: str | None
    order_status: str | None
    decision_id: int | None
    checks: list[dict[str, Any]]


def _confirmed(
    ticket: McpTicket, *, verdict: str | None = None, decision: DecisionLog | None = None
) -> ConfirmResult:
    if decision is None and ticket.decision_id is not None:
        decision = DecisionLog.objects.filter(pk=ticket.decision_id).first()
    return ConfirmResult(
        verdict=verdict or ticket.verdict,
        reason=ticket.reason,
        client_order_id=ticket.order.client_order_id if ticket.order else None,
        order_status=ticket.order.status if ticket.order else None,
        decision_id=ticket.decision_id,
        checks=list(decision.checks) if decision else [],
    )


def order_confirm(*, agent: McpAgent, confirmation_token: str) -> ConfirmResult:
    """Send a previewed order through ``decision_make`` (source ``mcp:<agent>``): the engine's
    decision row, checks and mode gate, now. Single use: a retry with the same token
    returns what the first confirm did and never sends a second order."""
    scope_require(agent, Scope.ORDERS_SUBMIT)
    now = timezone.now()
    with transaction.atomic():
        # One confirm at a time per agent: its rate limit counts what the others committed.
        McpAgent.objects.select_for_update().filter(pk=agent.pk).values_list("pk").first()
        ticket = (
            McpTicket.objects.select_for_update(of=("self",))
            .select_related("instrument", "order")
            .filter(token_hash=token_hash(confirmation_token.strip()))
            .first()
        )
        if ticket is None or ticket.agent_id != agent.pk:
            raise McpInputError(
                "confirmation_token", "unknown, or issued to another agent: preview the order again"
            )
        if ticket.confirmed_at is not None:
            return _confirmed(ticket, verdict="already_confirmed")
        if ticket.expires_at <= now:
            raise McpInputError(
                "confirmation_token",
                f"expired at {ticket.expires_at.isoformat()} (valid {ticket_ttl_seconds()}s): preview again",
            )
        inst = ticket.instrument
        known = decision_inputs(
            account_id=agent.account_id,
            symbol=inst.symbol,
            open_statuses=OPEN_STATUSES,
            now=now,
            last_close=True,
        )
        price = known.last_close
        ticket.confirmed_at = now
        if price is None:
            ticket.verdict, ticket.reason = (
                "denied",
                "reference_price: no stored bar for this instrument",
            )
            ticket.save()
            return _confirmed(ticket)
        failed = [
            c
            for c in _agent_checks(
                agent,
                symbol=inst.symbol,
                notional=ticket.quantity * price,
                side=ticket.side,
                now=now,
            )
            if not c["passed"]
        ]
        if ticket.side == "sell" and known.position_quantity != ticket.quantity:
            ticket.verdict = "denied"
            ticket.reason = f"position: now {known.position_quantity}, previewed {ticket.quantity}: preview again"
            ticket.save()
            return _confirmed(ticket)
        if failed:
            ticket.verdict = "denied"
            ticket.reason = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
            ticket.save()
            return _confirmed(ticket)
        signal = Signal(
            instrument=inst.symbol,
            ts=now,
            action=SignalAction.ENTER_LONG if ticket.side == "buy" else SignalAction.EXIT_LONG,
            price=price,
            inputs={
                "agent": agent.name,
                "ticket": str(ticket.pk),
                "quantity": str(ticket.quantity),
            },
        )
        outcome = decision_make(
            account=agent.account,
            signal=signal,
            strategy="mcp",
            strategy_params={"agent": agent.name},
            stake=ticket.quantity * price,
            source=agent.actor,
        )
        order = outcome.order
        ticket.decision_id = outcome.decision.pk
        ticket.order = order
        if order is None and outcome.decision.action == DecisionAction.HOLD:
            ticket.verdict, ticket.reason = "hold", outcome.decision.inputs.get("hold_reason", "")
        elif order is None:  # OBSERVATION: recorded as "would have", nothing sent
            ticket.verdict = "observation"
            ticket.reason = f"{outcome.decision.action}: the system is observing, nothing was sent"
        elif order.status == "denied":
            ticket.verdict, ticket.reason = "denied", order.status_reason
        else:
            ticket.verdict, ticket.reason = "sent", ""
        ticket.save()
        return _confirmed(ticket, decision=outcome.decision)


def order_cancel(*, agent: McpAgent, client_order_id: str, reason: str) -> dict[str, Any]:
    """Cancel one of this agent's own open orders (one it confirmed)."""
    scope_require(agent, Scope.ORDERS_SUBMIT)
    ticket = (
        McpTicket.objects.filter(agent=agent, order__client_order_id=client_order_id.strip()[:64])
        .select_related("order")
        .first()
    )
    if ticket is None or ticket.order is None:
        raise McpInputError(
            "client_order_id", "no order of this agent has that id (see the orders_open tool)"
        )
    try:
        order = trading_order_cancel(
            order_id=ticket.order.pk,
            actor=agent.actor,
            reason=reason.strip()[:500] or "agent cancel",
        )
    except OrderCancelRefused as exc:
        raise McpRefused(str(exc)) from exc
    return {
        "verdict": "cancelled",
        "client_order_id": order.client_order_id,
        "status": order.status,
    }


# --- controls -----------------------------------------------------------------------------------


def mode_request_pause(*, agent: McpAgent, reason: str) -> str:
    """PAUSE (an agent may stop trading, never resume): the mode after the change."""
    scope_require(agent, Scope.CONTROL_PAUSE)
    if not reason.strip():
        raise McpInputError("reason", "say why trading should pause")
    state = system_mode_set(
        mode=SystemMode.PAUSE, actor=agent.actor, source="api", reason=reason.strip()[:500]
    )
    return str(state.mode)


def kill_switch(*, agent: McpAgent, reason: str) -> dict[str, Any]:
    """Engage the kill switch (KILL latched, orders cancelled, positions closed)."""
    scope_require(agent, Scope.CONTROL_PAUSE)
    if not reason.strip():
        raise McpInputError("reason", "say why the kill switch is engaged")
    report = kill_switch_engage(actor=agent.actor, source="api", reason=reason.strip()[:500])
    return {
        "mode": SystemMode.KILL.value,
        "cancels_sent": report.cancels_sent,
        "closing_orders": list(report.closing_orders),
        "flat": report.flat,
        "incident_id": report.incident_id,
        "errors": list(report.errors),
    }
