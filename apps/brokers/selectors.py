"""Reads of apps.brokers for the panel, the healthcheck and the checklists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apps.accounts.models import Account, Broker
from apps.brokers.models import (
    BrokerSession,
    Discrepancy,
    DiscrepancyStatus,
    ReconciliationRun,
)


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


# A heartbeat older than this many sync periods means nobody is watching the session
# (the execution worker is dead), whatever state was last written.
STALE_HEARTBEAT_PERIODS = 4


def broker_sessions() -> list[dict[str, Any]]:
    """One row per account: its broker, connection state and ``up`` (connected AND
    heartbeating recently; the paper broker always is). The metric and the healthcheck
    both read ``up`` from here."""
    from django.conf import settings
    from django.utils import timezone

    fresh_after = timezone.now() - timedelta(
        seconds=STALE_HEARTBEAT_PERIODS * settings.BROKER_SYNC_SECONDS
    )
    sessions = {s.account_id: s for s in BrokerSession.objects.all()}
    rows = []
    for account in Account.objects.order_by("name"):
        session = sessions.get(account.pk)
        paper = account.broker == Broker.PAPER
        heartbeat = None if paper or not session else session.last_heartbeat_at
        state = "connected" if paper else (session.state if session else "unknown")
        rows.append(
            {
                "account": account.name,
                "broker": account.broker,
                "state": state,
                "up": paper
                or (state == "connected" and heartbeat is not None and heartbeat >= fresh_after),
                "last_heartbeat_at": heartbeat,
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
