"""Reads of apps.brokers for the panel, the healthcheck and the checklists."""

from __future__ import annotations

from typing import Any

from apps.brokers.models import (
    BrokerSession,
    Discrepancy,
    DiscrepancyStatus,
    ReconciliationRun,
)
from apps.trading.models import Account, Broker


def discrepancies_open() -> list[Discrepancy]:
    return list(
        Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN).select_related(
            "account", "incident"
        )
    )


def discrepancies_resolved(limit: int = 50) -> list[Discrepancy]:
    return list(
        Discrepancy.objects.exclude(status=DiscrepancyStatus.OPEN)
        .select_related("account")
        .order_by("-resolved_at", "-id")[:limit]
    )


def reconciliation_runs(limit: int = 20) -> list[ReconciliationRun]:
    return list(ReconciliationRun.objects.select_related("account")[:limit])


def broker_sessions() -> list[dict[str, Any]]:
    """One row per account: its broker and connection state (the paper broker: connected)."""
    sessions = {s.account_id: s for s in BrokerSession.objects.all()}
    rows = []
    for account in Account.objects.order_by("name"):
        session = sessions.get(account.pk)
        paper = account.broker == Broker.PAPER
        rows.append(
            {
                "account": account.name,
                "broker": account.broker,
                "state": "connected" if paper else (session.state if session else "unknown"),
                "last_heartbeat_at": None if paper or not session else session.last_heartbeat_at,
                "disconnected_since": None if paper or not session else session.disconnected_since,
                "last_error": "" if paper or not session else session.last_error,
            }
        )
    return rows


def last_reconciliation(account: Account | None = None) -> ReconciliationRun | None:
    runs = ReconciliationRun.objects.exclude(finished_at__isnull=True)
    if account is not None:
        runs = runs.filter(account=account)
    return runs.first()
