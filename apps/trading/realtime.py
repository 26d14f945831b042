"""Payloads of the trading events pushed to the panel (see docs/domain-contract.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.accounts.models import Account
from apps.audit.models import DecisionLog
from apps.core.realtime import GROUP_PANEL, broadcast
from apps.trading.models import EquitySnapshot, Fill, Order, Position


def equity_payload(snapshot: EquitySnapshot, account: Account) -> dict[str, Any]:
    pnl = snapshot.equity - account.starting_cash
    return {
        "account": account.name,
        "ts": snapshot.ts,
        "equity": snapshot.equity,
        "cash": snapshot.cash,
        "realized_pnl": snapshot.realized_pnl,
        "unrealized_pnl": snapshot.unrealized_pnl,
        "fees": snapshot.fees,
        "pnl": pnl,
        "pnl_pct": (pnl / account.starting_cash) if account.starting_cash else Decimal(0),
        "drawdown": snapshot.drawdown,
    }


def position_payload(position: Position) -> dict[str, Any]:
    return {
        "instrument": position.instrument.symbol,
        "quantity": position.quantity,
        "avg_price": position.avg_price,
        "last_price": position.last_price,
        "unrealized_pnl": position.unrealized_pnl,
        "realized_pnl": position.realized_pnl,
    }


def decision_payload(decision: DecisionLog) -> dict[str, Any]:
    return {
        "id": decision.pk,
        "account": decision.account,
        "created_at": decision.created_at,
        "bar_ts": decision.bar_ts,
        "instrument": decision.instrument,
        "strategy": decision.strategy,
        "signal": decision.signal,
        "price": decision.inputs.get("close", ""),
        "mode": decision.mode,
        "check_result": decision.check_result,
        "failed_checks": list(decision.failed_checks),
        "action": decision.action,
        "order_ids": list(decision.order_ids),
    }


def order_payload(order: Order) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "instrument": order.instrument.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "quantity": order.quantity,
        "status": order.status,
        "filled_quantity": order.filled_quantity,
        "avg_fill_price": order.avg_fill_price,
        "status_reason": order.status_reason,
        "created_at": order.created_at,
    }


def fill_payload(fill: Fill, order: Order) -> dict[str, Any]:
    return {
        "trade_id": fill.trade_id,
        "client_order_id": order.client_order_id,
        "instrument": order.instrument.symbol,
        "side": fill.side,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "ts": fill.ts,
    }


def broadcast_order(order: Order) -> None:
    broadcast(GROUP_PANEL, "order.updated", order_payload(order))


def broadcast_decision(decision: DecisionLog) -> None:
    broadcast(GROUP_PANEL, "decision.created", decision_payload(decision))


def broadcast_positions(account: Account) -> None:
    positions = account.positions.select_related("instrument").order_by("instrument__symbol")
    broadcast(
        GROUP_PANEL,
        "positions.updated",
        {"account": account.name, "positions": [position_payload(p) for p in positions]},
    )


def broadcast_equity(snapshot: EquitySnapshot, account: Account) -> None:
    broadcast(GROUP_PANEL, "equity.updated", equity_payload(snapshot, account))


def broadcast_fill(fill: Fill, order: Order) -> None:
    broadcast(GROUP_PANEL, "fill.created", fill_payload(fill, order))
