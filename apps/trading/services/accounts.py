"""Trading accounts: the paper account the engine trades."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings

from apps.accounts.models import Account, Broker

logger = logging.getLogger(__name__)


def account_get_or_create(
    *,
    name: str,
    broker: str = Broker.PAPER,
    currency: str = "USD",
    starting_cash: Decimal | None = None,
) -> Account:
    cash = starting_cash if starting_cash is not None else settings.PAPER_STARTING_CASH
    account, _ = Account.objects.get_or_create(
        name=name,
        defaults={
            "broker": broker,
            "currency": currency,
            "starting_cash": cash,
            "cash": cash,
            "peak_equity": cash,
        },
    )
    return account
