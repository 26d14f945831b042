from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.model.accounting import Ledger
from apps.model.bars import Bar
from apps.model.errors import InvalidOrderError, OrderStateError
from apps.model.orders import Fill, OrderState, OrderStatus
from apps.model.paper import PaperMatcher, SlippageModel
from apps.model.values import Instrument, OrderType, Side

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)


def tid(coid: str, n: int) -> str:
    """The trade id of ``coid``'s fill on bar ``n`` (keyed by the bar's open time)."""
    return f"paper-{coid}-{int((T0 + n * STEP).timestamp())}"


S = OrderStatus


def bar(
    n: int,
    o: str = "100",
    h: str = "105",
    lo: str = "95",
    c: str = "100",
    v: str = "1000",
    instrument: str = "ETH-BTC",
) -> Bar:
    return Bar(instrument, T0 + n * STEP, D(o), D(h), D(lo), D(c), D(v))


def order(
    coid: str = "o1",
    side: Side = Side.BUY,
    quantity: str = "1",
    limit: str | None = None,
    instrument: str = "ETH-BTC",
) -> OrderState:
    return OrderState(
        client_order_id=coid,
        instrument=instrument,
        side=side,
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        quantity=D(quantity),
        limit_price=D(limit) if limit is not None else None,
    )


def at(n: int) -> datetime:
    return T0 + n * STEP


# --- SlippageModel ----------------------------------------------------------------------


def test_slippage_buys_pay_up_sells_receive_less() -> None:
    model = SlippageModel(D(10))

    # 100 * (1 + 10/10000) = 100.1 ; 100 * (1 - 10/10000) = 99.9
    assert model.apply(D(100), Side.BUY) == D("100.1")
    assert model.apply(D(100), Side.SELL) == D("99.9")


def test_zero_slippage_returns_price_unchanged() -> None:
    price = D("123.45")

    assert SlippageModel().apply(price, Side.BUY) is price
    assert SlippageModel().apply(price, Side.SELL) is price


# --- submit / cancel --------------------------------------------------------------------


def test_submit_accepts_order_and_lists_it() -> None:
    matcher = PaperMatcher(D(0))
    o1, o2 = order("o1"), order("o2", instrument="LTC-BTC")

    matcher.submit(o1, at(0))
    matcher.submit(o2, at(0))

    assert o1.status is S.ACCEPTED
    assert matcher.open_orders() == [o1, o2]
    assert matcher.open_orders("LTC-BTC") == [o2]
    assert matcher.open_orders("NOPE") == []


def test_submit_accepts_already_submitted_order() -> None:
    matcher = PaperMatcher(D(0))
    o = order()
    o.apply(S.SUBMITTED)

    matcher.submit(o, at(0))

    assert o.status is S.ACCEPTED


def test_submit_twice_raises() -> None:
    matcher = PaperMatcher(D(0))
    o = order()
    matcher.submit(o, at(0))

    with pytest.raises(OrderStateError, match="already working"):
        matcher.submit(order(), at(0))


def test_submit_when_status_cannot_be_accepted_raises_and_books_nothing() -> None:
    matcher = PaperMatcher(D(0))
    o = order()
    o.apply(S.DENIED)

    with pytest.raises(OrderStateError):
        matcher.submit(o, at(0))

    assert matcher.open_orders() == []
    assert o.status is S.DENIED


def test_submit_with_naive_time_raises() -> None:
    matcher = PaperMatcher(D(0))

    with pytest.raises(ValueError, match="naive"):
        matcher.submit(order(), T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    "bad",
    [
        OrderState("o1", "ETH-BTC", Side.BUY, OrderType.LIMIT, D(1)),  # no limit price
        OrderState("o1", "ETH-BTC", Side.BUY, OrderType.MARKET, D(1), limit_price=D(5)),
        OrderState("o1", "ETH-BTC", Side.BUY, OrderType.LIMIT, D(1), limit_price=D(0)),
        OrderState("o1", "ETH-BTC", Side.BUY, OrderType.MARKET, D(0)),
    ],
)
def test_submit_invalid_order_raises(bad: OrderState) -> None:
    matcher = PaperMatcher(D(0))

    with pytest.raises(InvalidOrderError):
        matcher.submit(bad, at(0))
    assert bad.status is S.INITIALIZED


def test_cancel_working_order() -> None:
    matcher = PaperMatcher(D(0))
    o = order(limit="90")
    matcher.submit(o, at(0))

    assert matcher.cancel("o1") is True
    assert o.status is S.CANCELED
    assert matcher.open_orders() == []
    assert matcher.on_bar(bar(1, lo="80")) == []
    assert matcher.cancel("o1") is False
    assert matcher.cancel("unknown") is False


def test_cancel_after_partial_fill() -> None:
    matcher = PaperMatcher(D(0))
    o = order(quantity="5", limit="100")
    matcher.submit(o, at(0))
    matcher.on_bar(bar(1, v="10"))  # fills 0.1 * 10 = 1

    assert matcher.cancel("o1") is True
    assert o.status is S.CANCELED
    assert o.filled_quantity == D(1)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="fee_rate"):
        PaperMatcher(D(-1))
    with pytest.raises(ValueError, match="volume_participation"):
        PaperMatcher(D(0), volume_participation=D(0))
    with pytest.raises(ValueError, match="volume_participation"):
        PaperMatcher(D(0), volume_participation=D("1.5"))


# --- market orders ----------------------------------------------------------------------


def test_market_order_never_fills_on_bar_at_or_before_submit_time() -> None:
    matcher = PaperMatcher(D(0))
    o = order()
    matcher.submit(o, at(1))

    assert matcher.on_bar(bar(0)) == []
    assert matcher.on_bar(bar(1)) == []  # ts == submit time: still the same bar
    assert o.status is S.ACCEPTED
    assert len(matcher.on_bar(bar(2, o="101"))) == 1


def test_market_order_submitted_mid_bar_fills_at_next_open() -> None:
    matcher = PaperMatcher(D(0))
    o = order()
    matcher.submit(o, at(0) + timedelta(minutes=2))

    fills = matcher.on_bar(bar(1, o="101"))

    assert [f.price for f in fills] == [D(101)]


def test_market_buy_fills_completely_at_open_plus_slippage_and_fee() -> None:
    matcher = PaperMatcher(D("0.001"), SlippageModel(D(10)))
    o = order(quantity="2")
    matcher.submit(o, at(0))

    fills = matcher.on_bar(bar(1, o="200", v="0"))  # market orders ignore volume

    # price = 200 * 1.001 = 200.2 ; fee = 0.001 * 2 * 200.2 = 0.4004
    assert fills == [
        Fill(
            trade_id=tid("o1", 1),
            client_order_id="o1",
            instrument="ETH-BTC",
            side=Side.BUY,
            quantity=D(2),
            price=D("200.2"),
            fee=D("0.4004"),
            ts=at(1),
        )
    ]
    assert o.status is S.FILLED
    assert o.avg_fill_price == D("200.2")
    assert o.fees == D("0.4004")
    assert matcher.open_orders() == []


def test_market_sell_receives_less() -> None:
    matcher = PaperMatcher(D(0), SlippageModel(D(25)))
    matcher.submit(order(side=Side.SELL), at(0))

    (fill,) = matcher.on_bar(bar(1, o="80"))

    # 80 * (1 - 25/10000) = 80 * 0.9975 = 79.8
    assert fill.price == D("79.8")
    assert fill.side is Side.SELL


def test_only_orders_for_the_bar_instrument_fill() -> None:
    matcher = PaperMatcher(D(0))
    eth, ltc = order("e"), order("l", instrument="LTC-BTC")
    matcher.submit(eth, at(0))
    matcher.submit(ltc, at(0))

    fills = matcher.on_bar(bar(1, instrument="LTC-BTC"))

    assert [f.client_order_id for f in fills] == ["l"]
    assert eth.status is S.ACCEPTED
    assert matcher.open_orders() == [eth]


# --- limit orders -----------------------------------------------------------------------


def test_buy_limit_not_reached_keeps_working() -> None:
    matcher = PaperMatcher(D(0))
    o = order(limit="94")
    matcher.submit(o, at(0))

    assert matcher.on_bar(bar(1, lo="95")) == []
    assert matcher.open_orders() == [o]


@pytest.mark.parametrize(
    ("o", "lo", "expected"),
    [
        ("100", "95", "98"),  # trades down through the limit: at the limit
        ("97", "95", "97"),  # opens below the limit: at the open
        ("100", "98", "98"),  # low touches the limit exactly
    ],
)
def test_buy_limit_fills_at_min_open_limit(o: str, lo: str, expected: str) -> None:
    matcher = PaperMatcher(D(0), SlippageModel(D(50)))  # no slippage on limit fills
    matcher.submit(order(limit="98"), at(0))

    (fill,) = matcher.on_bar(bar(1, o=o, h="105", lo=lo))

    assert fill.price == D(expected)


@pytest.mark.parametrize(
    ("o", "h", "expected"),
    [
        ("100", "105", "102"),
        ("103", "105", "103"),
        ("100", "102", "102"),
    ],
)
def test_sell_limit_fills_at_max_open_limit(o: str, h: str, expected: str) -> None:
    matcher = PaperMatcher(D(0), SlippageModel(D(50)))
    matcher.submit(order(side=Side.SELL, limit="102"), at(0))

    (fill,) = matcher.on_bar(bar(1, o=o, h=h, lo="95"))

    assert fill.price == D(expected)


def test_sell_limit_not_reached() -> None:
    matcher = PaperMatcher(D(0))
    matcher.submit(order(side=Side.SELL, limit="106"), at(0))

    assert matcher.on_bar(bar(1, h="105.99")) == []


def test_limit_volume_cap_partial_fills_across_bars_with_deterministic_ids() -> None:
    matcher = PaperMatcher(D("0.01"), volume_participation=D("0.1"))
    o = order(quantity="2.5", limit="100")
    matcher.submit(o, at(0))

    f1 = matcher.on_bar(bar(1, v="10"))  # cap 0.1 * 10 = 1
    assert o.status is S.PARTIALLY_FILLED
    assert o.remaining == D("1.5")
    f2 = matcher.on_bar(bar(2, v="10"))  # 1 more
    f3 = matcher.on_bar(bar(3, v="10"))  # remaining 0.5
    f4 = matcher.on_bar(bar(4, v="10"))

    fills = f1 + f2 + f3
    assert [f.trade_id for f in fills] == [tid("o1", 1), tid("o1", 2), tid("o1", 3)]
    assert [f.quantity for f in fills] == [D(1), D(1), D("0.5")]
    assert [f.ts for f in fills] == [at(1), at(2), at(3)]
    # fee = 0.01 * 1 * 100 = 1, then 1, then 0.01 * 0.5 * 100 = 0.5
    assert [f.fee for f in fills] == [D(1), D(1), D("0.5")]
    assert f4 == []
    assert o.status is S.FILLED
    assert o.fees == D("2.5")
    assert matcher.open_orders() == []


def test_limit_orders_share_the_bar_volume_budget_in_submit_order() -> None:
    matcher = PaperMatcher(D(0), volume_participation=D("0.5"))
    first, second = order("a", quantity="3", limit="100"), order("b", quantity="3", limit="100")
    matcher.submit(first, at(0))
    matcher.submit(second, at(0))

    fills = matcher.on_bar(bar(1, v="8"))  # budget 0.5 * 8 = 4: a takes 3, b takes 1

    assert [(f.client_order_id, f.quantity) for f in fills] == [("a", D(3)), ("b", D(1))]
    assert matcher.open_orders() == [second]


def test_market_fill_uses_up_volume_budget_for_later_limits() -> None:
    matcher = PaperMatcher(D(0), volume_participation=D("0.5"))
    matcher.submit(order("m", quantity="3"), at(0))
    matcher.submit(order("l", quantity="3", limit="100"), at(0))

    fills = matcher.on_bar(bar(1, v="8"))  # budget 4: market takes 3, limit gets 1

    assert [(f.client_order_id, f.quantity) for f in fills] == [("m", D(3)), ("l", D(1))]


def test_zero_volume_bar_fills_no_limit_order() -> None:
    matcher = PaperMatcher(D(0))
    o = order(limit="100")
    matcher.submit(o, at(0))

    assert matcher.on_bar(bar(1, v="0")) == []
    assert o.status is S.ACCEPTED


def test_lot_size_rounding_skips_zero_and_rounds_down() -> None:
    instruments = {"ETH-BTC": Instrument.from_symbol("ETH-BTC", lot_size=D(1))}
    matcher = PaperMatcher(D(0), volume_participation=D("0.1"), instruments=instruments)
    o = order(quantity="3", limit="100")
    matcher.submit(o, at(0))

    assert matcher.on_bar(bar(1, v="5")) == []  # cap 0.5 -> 0 lots: skipped
    (fill,) = matcher.on_bar(bar(2, v="15"))  # cap 1.5 -> 1 lot

    assert fill.quantity == D(1)
    assert fill.trade_id == tid("o1", 2)  # keyed by the bar that filled it
    assert o.remaining == D(2)


def test_lot_size_remainder_below_budget_fills_whole() -> None:
    instruments = {"ETH-BTC": Instrument.from_symbol("ETH-BTC", lot_size=D(1))}
    matcher = PaperMatcher(D(0), instruments=instruments)
    o = order(quantity="0.5", limit="100")
    matcher.submit(o, at(0))

    (fill,) = matcher.on_bar(bar(1, v="10"))

    assert fill.quantity == D("0.5")


# --- integration with the ledger, determinism, bookkeeping -----------------------------


def test_fills_are_applied_to_order_once_and_book_into_ledger() -> None:
    matcher = PaperMatcher(D("0.001"))
    o = order(quantity="2")
    ledger = Ledger(cash=D(1000))
    matcher.submit(o, at(0))

    for fill in matcher.on_bar(bar(1, o="100")):
        ledger.apply_fill(fill)

    # cash = 1000 - (2*100 + 0.2) = 799.8
    assert ledger.cash == D("799.8")
    assert o.trade_ids == {tid("o1", 1)}


def run_scenario() -> list[Fill]:
    matcher = PaperMatcher(D("0.002"), SlippageModel(D(5)), D("0.2"))
    matcher.submit(order("a", quantity="4", limit="99"), at(0))
    matcher.submit(order("b", side=Side.SELL, quantity="1"), at(0))
    matcher.submit(order("c", quantity="1", instrument="LTC-BTC"), at(1))
    out: list[Fill] = []
    for n in range(1, 6):
        out += matcher.on_bar(bar(n, v="10"))
        out += matcher.on_bar(bar(n, v="10", instrument="LTC-BTC"))
    return out


def test_matching_is_deterministic() -> None:
    first, second = run_scenario(), run_scenario()

    assert first == second
    assert len({f.trade_id for f in first}) == len(first)


def test_book_empties_when_all_orders_done() -> None:
    matcher = PaperMatcher(D(0))
    matcher.submit(order(), at(0))
    matcher.on_bar(bar(1))

    # white-box: no empty per-instrument book left behind (keeps on_bar a dict miss)
    assert matcher._books == {}
    assert matcher.on_bar(bar(2)) == []


def test_trade_ids_are_the_same_when_the_book_is_rebuilt_and_the_bar_replayed() -> None:
    # The live paper venue rebuilds its book from the database for every bar; a bar
    # processed twice (after a crash) must give the same trade id, so fill_apply
    # applies it once.
    first, second = PaperMatcher(D(0)), PaperMatcher(D(0))
    o1, o2 = order(quantity="1"), order(quantity="1")
    first.submit(o1, at(0))
    second.submit(o2, at(0))

    assert [f.trade_id for f in first.on_bar(bar(1))] == [f.trade_id for f in second.on_bar(bar(1))]
