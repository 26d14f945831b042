"""What the broker services share: actors, alert codes, the account's session, live accounts."""

from __future__ import annotations

import logging

from apps.accounts.models import Account, Broker
from apps.brokers.models import (
    BrokerSession,
)
from apps.core.exceptions import ApplicationError

logger = logging.getLogger(__name__)

ACTOR_RECONCILIATION = "reconciliation"
ACTOR_WATCHDOG = "broker-watchdog"
ALERT_DISCREPANCY = "reconciliation_discrepancy"
ALERT_DISCONNECTED = "broker_disconnected:{account}"


class DiscrepancyResolveRefused(ApplicationError):
    pass


class DiscrepancyNotFound(DiscrepancyResolveRefused):
    http_status = 404


def session_for(account: Account) -> BrokerSession:
    session, _ = BrokerSession.objects.get_or_create(account=account)
    return session


def live_accounts() -> list[Account]:
    """Accounts at a real broker (the paper broker's book is our database)."""
    return list(Account.objects.exclude(broker=Broker.PAPER).order_by("id"))
