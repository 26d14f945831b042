"""Test setup through the services, as the app does it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from apps.accounts.models import Account
from apps.marketdata.models import Instrument
from apps.marketdata.services import instrument_get_or_create
from apps.risk.models import RiskLimit
from apps.trading.models import Order
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.common import new_client_order_id

T0 = datetime(2018, 4, 4, 12, 0, tzinfo=UTC)


def paper_account(
    cash: str = "10000",
    *,
    max_order: str = "5000",
    max_position: str = "20000",
    name: str = "paper",
) -> Account:
    account = account_get_or_create(name=name, starting_cash=Decimal(cash))
    RiskLimit.objects.update_or_create(
        account=account,
        defaults={
            "max_order_notional": Decimal(max_order),
            "max_position_notional": Decimal(max_position),
        },
    )
    return account


def instrument(symbol: str = "BTC-USD") -> Instrument:
    return instrument_get_or_create(symbol=symbol)


def accepted_order(
    account: Account,
    inst: Instrument,
    *,
    side: str = "buy",
    quantity: str = "2",
    decision_ts: datetime = T0,
) -> Order:
    return Order.objects.create(
        account=account,
        instrument=inst,
        client_order_id=new_client_order_id(),
        side=side,
        order_type="market",
        quantity=Decimal(quantity),
        status="accepted",
        broker_order_id=f"paper-{new_client_order_id()}",
        decision_bar_ts=decision_ts,
    )
