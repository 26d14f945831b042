from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.model.errors import (
    DuplicateFillError,
    InvalidOrderError,
    OrderStateError,
    OverfillError,
)
from apps.model.orders import (
    ORDER_TRANSITIONS,
    Fill,
    OrderIntent,
    OrderState,
    OrderStatus,
    transition,
)
from apps.model.values import OrderType, Side

S = OrderStatus
TS = datetime(2024, 1, 1, tzinfo=UTC)

# The expected table, written out independently of the implementation.
LEGAL = {
    (S.INITIALIZED, S.DENIED),
    (S.INITIALIZED, S.SUBMITTED),
    (S.SUBMITTED, S.ACCEPTED),
    (S.SUBMITTED, S.REJECTED),
    (S.SUBMITTED, S.CANCELED),
    (S.SUBMITTED, S.EXPIRED),
    (S.SUBMITTED, S.PARTIALLY_FILLED),
    (S.SUBMITTED, S.FILLED),
    (S.ACCEPTED, S.PARTIALLY_FILLED),
    (S.ACCEPTED, S.FILLED),
    (S.ACCEPTED, S.PENDING_CANCEL),
    (S.ACCEPTED, S.CANCELED),
    (S.ACCEPTED, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.PENDING_CANCEL),
    (S.PARTIALLY_FILLED, S.CANCELED),
    (S.PARTIALLY_FILLED, S.EXPIRED),
    (S.PENDING_CANCEL, S.CANCELED),
    (S.PENDING_CANCEL, S.PARTIALLY_FILLED),
    (S.PENDING_CANCEL, S.FILLED),
    (S.PENDING_CANCEL, S.ACCEPTED),
}
TERMINAL = {S.DENIED, S.REJECTED, S.FILLED, S.CANCELED, S.EXPIRED}
ALL_PAIRS = list(itertools.product(OrderStatus, OrderStatus))


def test_table_matches_expected_edges() -> None:
    assert ORDER_TRANSITIONS == LEGAL
    assert len(ALL_PAIRS) == 100


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS, ids=lambda s: str(s))
def test_transition_every_pair(current: OrderStatus, new: OrderStatus) -> None:
    if (current, new) in LEGAL:
        assert transition(current, new) is new
    else:
        with pytest.raises(OrderStateError, match="illegal order transition") as info:
            transition(current, new)
        assert info.value.extra == {"current": str(current), "new": str(new)}


@pytest.mark.parametrize("status", list(OrderStatus), ids=str)
def test_terminal_states_have_no_outgoing_edges(status: OrderStatus) -> None:
    outgoing = {new for current, new in ORDER_TRANSITIONS if current is status}

    assert status.is_terminal is (status in TERMINAL)
    assert (not outgoing) is status.is_terminal


def test_real_world_edges() -> None:
    assert (S.CANCELED, S.FILLED) not in ORDER_TRANSITIONS
    assert (S.PENDING_CANCEL, S.FILLED) in ORDER_TRANSITIONS
    assert (S.SUBMITTED, S.FILLED) in ORDER_TRANSITIONS


def test_is_open() -> None:
    assert {s for s in OrderStatus if s.is_open} == {
        S.SUBMITTED,
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
        S.PENDING_CANCEL,
    }
    assert not S.INITIALIZED.is_open
    assert not S.INITIALIZED.is_terminal


# --- OrderIntent -------------------------------------------------------------------


def test_intent_defaults_to_market() -> None:
    intent = OrderIntent("ETH-BTC", Side.BUY, Decimal("1.5"))

    assert intent.order_type is OrderType.MARKET
    assert intent.limit_price is None
    assert intent.reduce_only is False
    assert intent.reason == ""


def test_intent_coerces_string_enums() -> None:
    intent = OrderIntent("ETH-BTC", "sell", Decimal(1), "limit", Decimal(2))  # type: ignore[arg-type]

    assert intent.side is Side.SELL
    assert intent.order_type is OrderType.LIMIT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quantity": Decimal(0)},
        {"quantity": Decimal(-1)},
        {"quantity": Decimal("NaN")},
        {"quantity": Decimal("Infinity")},
        {"quantity": 1.5},  # float is refused
        {"side": "hold"},
        {"order_type": "stop"},
        {"order_type": OrderType.LIMIT},  # no limit price
        {"order_type": OrderType.LIMIT, "limit_price": Decimal(0)},
        {"order_type": OrderType.LIMIT, "limit_price": Decimal(-5)},
        {"limit_price": Decimal(5)},  # market with limit price
        {"decision_price": Decimal(0)},
    ],
)
def test_intent_when_invalid_then_raises(kwargs: dict[str, object]) -> None:
    params: dict[str, object] = {"instrument": "ETH-BTC", "side": Side.BUY, "quantity": Decimal(1)}
    params.update(kwargs)

    with pytest.raises(InvalidOrderError):
        OrderIntent(**params)  # type: ignore[arg-type]


def test_intent_limit_valid() -> None:
    intent = OrderIntent(
        "ETH-BTC", Side.BUY, Decimal(1), OrderType.LIMIT, Decimal("0.05"), Decimal("0.051")
    )

    assert intent.limit_price == Decimal("0.05")


# --- OrderState ----------------------------------------------------------------------


def make_order(quantity: str = "3", status: OrderStatus = S.ACCEPTED) -> OrderState:
    return OrderState(
        client_order_id="o-1",
        instrument="ETH-BTC",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(quantity),
        status=status,
    )


def make_fill(trade_id: str, quantity: str, price: str, fee: str = "0", **kw: object) -> Fill:
    params: dict[str, object] = {
        "trade_id": trade_id,
        "client_order_id": "o-1",
        "instrument": "ETH-BTC",
        "side": Side.BUY,
        "quantity": Decimal(quantity),
        "price": Decimal(price),
        "fee": Decimal(fee),
        "ts": TS,
    }
    params.update(kw)
    return Fill(**params)  # type: ignore[arg-type]


def snapshot(order: OrderState) -> tuple[object, ...]:
    return (
        order.status,
        order.filled_quantity,
        order.avg_fill_price,
        order.fees,
        frozenset(order.trade_ids),
        order.filled_notional,
    )


def test_from_intent_builds_initialized_order() -> None:
    intent = OrderIntent("ETH-BTC", Side.SELL, Decimal(2), OrderType.LIMIT, Decimal(7))

    order = OrderState.from_intent("c-9", intent)

    assert order.status is S.INITIALIZED
    assert (order.client_order_id, order.instrument, order.side) == ("c-9", "ETH-BTC", Side.SELL)
    assert (order.order_type, order.quantity, order.limit_price) == (
        OrderType.LIMIT,
        Decimal(2),
        Decimal(7),
    )
    assert order.filled_quantity == 0
    assert order.avg_fill_price is None
    assert order.fees == 0
    assert order.trade_ids == set()
    assert order.remaining == Decimal(2)


def test_trade_ids_not_shared_between_orders() -> None:
    a, b = make_order(), make_order()

    a.apply_fill(make_fill("t1", "1", "100"))

    assert b.trade_ids == set()


def test_apply_moves_status_or_raises() -> None:
    order = make_order(status=S.INITIALIZED)

    order.apply(S.SUBMITTED)
    order.apply(S.ACCEPTED)
    assert order.status is S.ACCEPTED

    order.apply(S.CANCELED)
    with pytest.raises(OrderStateError):
        order.apply(S.FILLED)
    assert order.status is S.CANCELED


def test_apply_fill_partial_then_full_with_vwap() -> None:
    order = make_order("3")

    order.apply_fill(make_fill("t1", "1", "100", fee="0.1"))
    assert order.status is S.PARTIALLY_FILLED
    assert order.remaining == Decimal(2)
    assert order.avg_fill_price == Decimal(100)

    order.apply_fill(make_fill("t2", "2", "103", fee="0.206"))
    # vwap = (1*100 + 2*103) / 3 = 306 / 3 = 102
    assert order.status is S.FILLED
    assert order.filled_quantity == Decimal(3)
    assert order.avg_fill_price == Decimal(102)
    assert order.fees == Decimal("0.306")
    assert order.trade_ids == {"t1", "t2"}
    assert order.remaining == 0


def test_avg_fill_price_is_exact_running_notional_over_quantity() -> None:
    order = make_order("10")

    order.apply_fill(make_fill("t1", "1", "100"))
    order.apply_fill(make_fill("t2", "2", "101"))
    # (100 + 202) / 3 = 302/3, one correctly rounded division, no accumulated error
    assert order.avg_fill_price == Decimal(302) / Decimal(3)
    order.apply_fill(make_fill("t3", "3", "102"))
    # (302 + 306) / 6 = 608 / 6
    assert order.filled_notional == Decimal(608)
    assert order.avg_fill_price == Decimal(608) / Decimal(6)


def test_apply_fill_from_submitted_goes_straight_to_filled() -> None:
    order = make_order("1", status=S.SUBMITTED)

    order.apply_fill(make_fill("t1", "1", "5"))

    assert order.status is S.FILLED


def test_apply_fill_while_pending_cancel_is_accepted() -> None:
    order = make_order("2", status=S.PENDING_CANCEL)

    order.apply_fill(make_fill("t1", "1", "5"))

    assert order.status is S.PARTIALLY_FILLED


def test_duplicate_fill_raises_and_changes_nothing() -> None:
    order = make_order("3")
    order.apply_fill(make_fill("t1", "1", "100", fee="0.1"))
    before = snapshot(order)

    with pytest.raises(DuplicateFillError) as info:
        order.apply_fill(make_fill("t1", "1", "100", fee="0.1"))

    assert snapshot(order) == before
    assert info.value.extra["trade_id"] == "t1"
    assert isinstance(info.value, OrderStateError)


def test_duplicate_fill_on_filled_order_reports_duplicate_not_state() -> None:
    order = make_order("1")
    order.apply_fill(make_fill("t1", "1", "100"))

    with pytest.raises(DuplicateFillError):
        order.apply_fill(make_fill("t1", "1", "100"))


def test_overfill_raises_and_changes_nothing() -> None:
    order = make_order("3")
    order.apply_fill(make_fill("t1", "2", "100"))
    before = snapshot(order)

    with pytest.raises(OverfillError, match="overfills"):
        order.apply_fill(make_fill("t2", "1.5", "100"))

    assert snapshot(order) == before
    assert "t2" not in order.trade_ids


@pytest.mark.parametrize("status", [S.CANCELED, S.EXPIRED, S.REJECTED, S.INITIALIZED, S.DENIED])
def test_fill_on_status_that_cannot_fill_raises_and_changes_nothing(status: OrderStatus) -> None:
    order = make_order("3", status=status)
    before = snapshot(order)

    with pytest.raises(OrderStateError, match="illegal order transition"):
        order.apply_fill(make_fill("t1", "1", "100"))

    assert snapshot(order) == before


@pytest.mark.parametrize(
    "kw",
    [
        {"client_order_id": "other"},
        {"instrument": "LTC-BTC"},
        {"side": Side.SELL},
        {"qty": Decimal(0)},
        {"qty": Decimal(-1)},
    ],
)
def test_foreign_or_bad_fill_raises_and_changes_nothing(kw: dict[str, object]) -> None:
    order = make_order("3")
    before = copy.deepcopy(snapshot(order))
    quantity = str(kw.pop("qty", "1"))

    with pytest.raises(OrderStateError):
        order.apply_fill(make_fill("t1", quantity, "100", **kw))

    assert snapshot(order) == before


def test_fill_notional_and_frozen() -> None:
    fill = make_fill("t1", "2", "1.5")

    assert fill.notional == Decimal("3.0")
    with pytest.raises(AttributeError):
        fill.price = Decimal(1)  # type: ignore[misc]
