"""Test setup through the services, as the app does it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from apps.accounts.models import Account, Broker
from apps.marketdata.models import Instrument
from apps.marketdata.services import instrument_get_or_create
from apps.model.orders import Fill as FillValue
from apps.model.values import Side
from apps.risk.models import RiskLimit
from apps.trading.models import Order
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.common import new_client_order_id
from apps.trading.services.fills import fill_apply
from apps.trading.venues.mapping import venue_order
from apps.trading.venues.paper import PaperVenue, paper_fill_book

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
    """An order the broker acknowledged: on a paper account it is on the paper broker's book
    too (submitted to the paper venue, as ``orders_send`` does)."""
    order = Order.objects.create(
        account=account,
        instrument=inst,
        client_order_id=new_client_order_id(),
        side=side,
        order_type="market",
        quantity=Decimal(quantity),
        status="accepted",
        decision_bar_ts=decision_ts,
    )
    if account.broker == Broker.PAPER:
        ack = PaperVenue(account).submit(venue_order(order))
        order.broker_order_id = ack.broker_order_id
    else:
        order.broker_order_id = f"{account.broker}-{new_client_order_id()}"
    order.save(update_fields=["broker_order_id"])
    return order


def broker_fill(
    order: Order,
    *,
    trade_id: str,
    quantity: Decimal,
    price: Decimal,
    ts: datetime,
    fee: Decimal = Decimal(0),
) -> FillValue:
    """An execution of ``order`` the broker made, booked on both sides: in the paper
    broker's own book (for a paper account) and in ours through ``fill_apply``."""
    fill = FillValue(
        trade_id=trade_id,
        client_order_id=order.client_order_id,
        instrument=order.instrument.symbol,
        side=Side(order.side),
        quantity=quantity,
        price=price,
        fee=fee,
        ts=ts,
    )
    if order.account.broker == Broker.PAPER:
        paper_fill_book(account=order.account, fill=fill)
    fill_apply(fill=fill)
    return fill
