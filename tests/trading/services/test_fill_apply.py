from __future__ import annotations

import dataclasses
import importlib
from datetime import timedelta
from decimal import Decimal as D

import pytest

from apps.accounts.models import Account
from apps.model.errors import OverfillError
from apps.model.orders import Fill as FillValue
from apps.model.values import Side
from apps.trading.models import Fill, Order, Position
from apps.trading.services.fills import fill_apply, fills_apply
from apps.trading.services.marking import mark_to_market
from tests.trading.factories import T0, accepted_order, instrument, paper_account

pytestmark = pytest.mark.django_db


def fill(
    order: Order, trade_id: str, qty: str, price: str, fee: str, side: Side = Side.BUY
) -> FillValue:
    return FillValue(
        trade_id=trade_id,
        client_order_id=order.client_order_id,
        instrument=order.instrument.symbol,
        side=side,
        quantity=D(qty),
        price=D(price),
        fee=D(fee),
        ts=T0 + timedelta(minutes=1),
    )


def test_fill_apply_when_same_trade_id_twice_then_second_changes_nothing() -> None:
    # Arrange
    account = paper_account("1000")
    order = accepted_order(account, instrument(), quantity="2")
    f = fill(order, "T-1", "2", "100", "0.2")

    # Act
    first = fill_apply(fill=f)
    second = fill_apply(fill=f)

    # Assert
    assert first is not None
    assert second is None
    assert Fill.objects.filter(trade_id="T-1").count() == 1
    account.refresh_from_db()
    assert account.cash == D("799.8")  # 1000 - (2*100 + 0.2), once
    assert Position.objects.get(account=account).quantity == D(2)
    order.refresh_from_db()
    assert order.status == "filled"
    assert order.filled_quantity == D(2)


def test_fill_apply_when_round_trip_then_pnl_and_fees_are_exact() -> None:
    # buy 2 @ 100 fee 0.2; sell 1 @ 110 fee 0.11; sell 1 @ 90.5 fee 0.0905
    account = paper_account("1000")
    inst = instrument()
    buy = accepted_order(account, inst, quantity="2")
    fill_apply(fill=fill(buy, "B1", "2", "100", "0.2"))
    sell1 = accepted_order(account, inst, side="sell", quantity="1")
    fill_apply(fill=fill(sell1, "S1", "1", "110", "0.11", Side.SELL))
    sell2 = accepted_order(account, inst, side="sell", quantity="1")
    fill_apply(fill=fill(sell2, "S2", "1", "90.5", "0.0905", Side.SELL))

    account.refresh_from_db()
    # realized = (110-100)*1 + (90.5-100)*1 = 0.5 ; fees = 0.2 + 0.11 + 0.0905 = 0.4005
    assert account.realized_pnl == D("0.5")
    assert account.fees_paid == D("0.4005")
    # cash = 1000 - 200.2 + 109.89 + 90.4095 = 1000.0995 = 1000 + 0.5 - 0.4005
    assert account.cash == D("1000.0995")
    position = Position.objects.get(account=account)
    assert position.quantity == 0
    assert position.realized_pnl == D("0.5")
    assert [f.realized_pnl for f in Fill.objects.order_by("id")] == [D(0), D(10), D("-9.5")]


def test_fill_apply_when_partial_fills_then_average_price_is_volume_weighted() -> None:
    account = paper_account("1000")
    order = accepted_order(account, instrument(), quantity="3")
    fill_apply(fill=fill(order, "P1", "1", "100", "0"))
    fill_apply(fill=fill(order, "P2", "2", "103", "0"))

    order.refresh_from_db()
    assert order.status == "filled"
    assert order.avg_fill_price == D("102")  # (100 + 206) / 3
    position = Position.objects.get(account=account)
    assert position.avg_price == D("102")


def test_fill_apply_when_overfill_then_raises_and_writes_nothing() -> None:
    account = paper_account("1000")
    order = accepted_order(account, instrument(), quantity="1")

    with pytest.raises(OverfillError):
        fill_apply(fill=fill(order, "O1", "2", "100", "0"))

    assert not Fill.objects.exists()
    assert Account.objects.get(pk=account.pk).cash == D("1000")
    assert Order.objects.get(pk=order.pk).status == "accepted"


def test_mark_to_market_when_price_moves_then_equity_and_drawdown_follow() -> None:
    account = paper_account("1000")
    inst = instrument()
    order = accepted_order(account, inst, quantity="2")
    fill_apply(fill=fill(order, "M1", "2", "100", "0"))

    up = mark_to_market(account=account, prices={inst.symbol: D("150")}, ts=T0)
    down = mark_to_market(
        account=account, prices={inst.symbol: D("75")}, ts=T0 + timedelta(minutes=1)
    )

    # cash 800; equity 800 + 2*150 = 1100 (peak), then 800 + 2*75 = 950
    assert up.equity == D("1100")
    assert up.unrealized_pnl == D("100")
    assert down.equity == D("950")
    # drawdown = 150 / 1100 = 0.136363636... stored to 8 places
    assert down.drawdown == D("0.13636364")


def _fees_from_fills_table(position: Position) -> D:
    """What the fills table says this position paid: the sum of its fills' fees."""
    fees = Fill.objects.filter(
        account_id=position.account_id, order__instrument_id=position.instrument_id
    ).values_list("fee", flat=True)
    return sum(fees, D(0))


def test_position_fees_when_fills_booked_one_by_one_and_batched_then_equal_fills_table() -> None:
    """Position.fees used to be twice the fees paid (booked by the accounting Position and
    again by the fill service). Both booking paths now book each fee once."""
    account = paper_account("10000")
    inst = instrument()
    buy = accepted_order(account, inst, quantity="2")
    fill_apply(fill=fill(buy, "B1", "1", "100", "0.1"))
    fill_apply(fill=fill(buy, "B2", "1", "101", "0.101"))
    sell = accepted_order(account, inst, side="sell", quantity="2")
    fills_apply(fills=[fill(sell, "S1", "2", "99", "0.198", Side.SELL)])

    position = Position.objects.get(account=account)
    account.refresh_from_db()
    assert position.fees == D("0.399")
    assert position.fees == _fees_from_fills_table(position)
    assert account.fees_paid == position.fees


def test_fees_migration_when_position_fees_doubled_then_recomputed_from_fills() -> None:
    from django.apps import apps as django_apps

    migration = importlib.import_module("apps.trading.migrations.0004_position_fees_from_fills")
    account = paper_account("1000")
    inst = instrument()
    buy = accepted_order(account, inst, quantity="2")
    fill_apply(fill=fill(buy, "B1", "2", "100", "0.2"))
    Position.objects.filter(account=account).update(fees=D("0.4"))  # as the old code booked

    migration.fees_from_fills(django_apps, None)

    position = Position.objects.get(account=account)
    assert position.fees == D("0.2") == _fees_from_fills_table(position)


def test_fills_apply_when_same_execution_twice_in_one_batch_then_booked_once() -> None:
    account = paper_account("1000")
    order = accepted_order(account, instrument(), quantity="2")
    f = fill(order, "T-1", "1", "100", "0.1")

    rows = fills_apply(fills=[f, f])

    assert len(rows) == 1
    assert Fill.objects.filter(trade_id="T-1").count() == 1
    assert Position.objects.get(account=account).quantity == D(1)


def test_fill_apply_when_order_unknown_then_raises_and_writes_nothing() -> None:
    account = paper_account("1000")
    order = accepted_order(account, instrument(), quantity="2")
    stray = fill(order, "T-9", "1", "100", "0.1")
    stray = dataclasses.replace(stray, client_order_id="tb-not-ours")

    with pytest.raises(Order.DoesNotExist, match="tb-not-ours"):
        fill_apply(fill=stray)

    assert not Fill.objects.exists()
    account.refresh_from_db()
    assert account.cash == D(1000)
