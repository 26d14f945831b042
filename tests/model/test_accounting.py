from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.model.accounting import (
    EquityPoint,
    Ledger,
    Position,
    fee_for,
    max_drawdown,
)
from apps.model.orders import Fill
from apps.model.values import Side

TS = datetime(2024, 1, 1, tzinfo=UTC)
D = Decimal


def fill(side: Side, quantity: str, price: str, fee: str = "0", instrument: str = "X-Y") -> Fill:
    return Fill(
        trade_id="t",
        client_order_id="o",
        instrument=instrument,
        side=side,
        quantity=D(quantity),
        price=D(price),
        fee=D(fee),
        ts=TS,
    )


def buy(quantity: str, price: str, fee: str = "0", instrument: str = "X-Y") -> Fill:
    return fill(Side.BUY, quantity, price, fee, instrument)


def sell(quantity: str, price: str, fee: str = "0", instrument: str = "X-Y") -> Fill:
    return fill(Side.SELL, quantity, price, fee, instrument)


# --- Position ---------------------------------------------------------------------------


def test_position_defaults_flat() -> None:
    pos = Position("X-Y")

    assert (pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees) == (0, 0, 0, 0)
    assert pos.unrealized_pnl(D(5)) == 0


def test_long_add_then_partial_close() -> None:
    pos = Position("X-Y")

    assert pos.apply_fill(buy("2", "100", "0.2")) == 0
    assert pos.apply_fill(buy("2", "110", "0.22")) == 0
    # avg = (2*100 + 2*110) / 4 = 420 / 4 = 105
    assert (pos.quantity, pos.avg_price) == (D(4), D(105))

    realized = pos.apply_fill(sell("1", "115", "0.115"))
    # (115 - 105) * 1 = 10; average unchanged on a partial close
    assert realized == D(10)
    assert (pos.quantity, pos.avg_price, pos.realized_pnl) == (D(3), D(105), D(10))
    # fees 0.2 + 0.22 + 0.115 = 0.535
    assert pos.fees == D("0.535")
    # unrealized at 100: (100 - 105) * 3 = -15
    assert pos.unrealized_pnl(D(100)) == D(-15)
    assert pos.notional(D(100)) == D(300)
    assert pos.market_value(D(100)) == D(300)


def test_short_open_add_partial_cover() -> None:
    pos = Position("X-Y")

    pos.apply_fill(sell("1", "10"))
    pos.apply_fill(sell("3", "14"))
    # qty -4, avg = (1*10 + 3*14) / 4 = 52 / 4 = 13
    assert (pos.quantity, pos.avg_price) == (D(-4), D(13))

    realized = pos.apply_fill(buy("1", "11"))
    # short gains when price falls: (11 - 13) * 1 * -1 = 2
    assert realized == D(2)
    assert (pos.quantity, pos.avg_price) == (D(-3), D(13))
    # unrealized at 12: (12 - 13) * -3 = 3; notional is gross, market value signed
    assert pos.unrealized_pnl(D(12)) == D(3)
    assert pos.notional(D(12)) == D(36)
    assert pos.market_value(D(12)) == D(-36)


def test_short_flip_to_long_through_zero() -> None:
    pos = Position("X-Y")

    pos.apply_fill(sell("3", "50"))
    r1 = pos.apply_fill(buy("1", "40"))  # (40 - 50) * 1 * -1 = 10
    r2 = pos.apply_fill(buy("5", "45"))  # closes 2: (45 - 50) * 2 * -1 = 10; opens +3 @ 45

    assert (r1, r2) == (D(10), D(10))
    assert (pos.quantity, pos.avg_price, pos.realized_pnl) == (D(3), D(45), D(20))


def test_long_flip_to_short_through_zero() -> None:
    pos = Position("X-Y")

    pos.apply_fill(buy("1", "100"))
    realized = pos.apply_fill(sell("3", "90"))

    # closes 1: (90 - 100) * 1 = -10; opens -2 @ 90
    assert realized == D(-10)
    assert (pos.quantity, pos.avg_price) == (D(-2), D(90))


def test_close_exactly_resets_avg_price() -> None:
    pos = Position("X-Y")
    pos.apply_fill(buy("2", "100"))

    realized = pos.apply_fill(sell("2", "95"))

    # (95 - 100) * 2 = -10
    assert realized == D(-10)
    assert (pos.quantity, pos.avg_price) == (0, 0)
    assert pos.unrealized_pnl(D(1000)) == 0


def test_position_rejects_other_instrument() -> None:
    pos = Position("X-Y")

    with pytest.raises(ValueError, match="Z-Y"):
        pos.apply_fill(buy("1", "1", instrument="Z-Y"))
    assert pos.quantity == 0


# --- Ledger -----------------------------------------------------------------------------


def test_ledger_buy_then_partial_sell_hand_checked() -> None:
    ledger = Ledger(cash=D(1000))

    assert ledger.apply_fill(buy("2", "100", "0.2")) == 0
    # cash = 1000 - (2*100 + 0.2) = 799.8
    assert ledger.cash == D("799.8")

    realized = ledger.apply_fill(sell("1", "110", "0.11"))
    # realized = (110 - 100) * 1 = 10; cash = 799.8 + 1*110 - 0.11 = 909.69
    assert realized == D(10)
    assert ledger.cash == D("909.69")
    assert ledger.fees == D("0.31")  # 0.2 + 0.11
    assert ledger.realized_pnl == D(10)
    assert ledger.position("X-Y") == D(1)
    assert ledger.position("NOPE") == 0

    marks = {"X-Y": D(120)}
    # unrealized = (120 - 100) * 1 = 20; equity = 909.69 + 1*120 = 1029.69
    # cross-check: 1000 + realized 10 + unrealized 20 - fees 0.31 = 1029.69
    assert ledger.unrealized_pnl(marks) == D(20)
    assert ledger.equity(marks) == D("1029.69")


def test_ledger_short_cash_and_equity() -> None:
    ledger = Ledger(cash=D(0))

    ledger.apply_fill(sell("3", "50", "0.15"))
    # cash = 0 + 150 - 0.15 = 149.85
    assert ledger.cash == D("149.85")
    # equity at 40 = 149.85 + (-3 * 40) = 29.85 = unrealized 30 - fees 0.15
    assert ledger.equity({"X-Y": D(40)}) == D("29.85")
    assert ledger.unrealized_pnl({"X-Y": D(40)}) == D(30)


def test_ledger_multiple_instruments_and_flat_positions_need_no_mark() -> None:
    ledger = Ledger(cash=D(100))
    ledger.apply_fill(buy("1", "10", instrument="A-Q"))
    ledger.apply_fill(sell("1", "12", instrument="A-Q"))  # flat, realized 2
    ledger.apply_fill(buy("2", "5", instrument="B-Q"))
    # cash = 100 - 10 + 12 - 10 = 92

    assert ledger.cash == D(92)
    assert ledger.realized_pnl == D(2)
    # A-Q is flat, so only B-Q needs a mark: 92 + 2*6 = 104
    assert ledger.equity({"B-Q": D(6)}) == D(104)
    assert ledger.unrealized_pnl({"B-Q": D(6)}) == D(2)


def test_ledger_equity_when_mark_missing_then_raises() -> None:
    ledger = Ledger(cash=D(100))
    ledger.apply_fill(buy("1", "10"))

    with pytest.raises(KeyError, match="X-Y"):
        ledger.equity({})
    with pytest.raises(KeyError, match="X-Y"):
        ledger.unrealized_pnl({})


def test_ledger_positions_not_shared() -> None:
    a, b = Ledger(cash=D(0)), Ledger(cash=D(0))

    a.apply_fill(buy("1", "1"))

    assert b.positions == {}
    assert b.fees == 0


# --- helpers ----------------------------------------------------------------------------


def test_fee_for() -> None:
    # 2 * 100 * 0.001 = 0.2
    assert fee_for(D(200), D("0.001")) == D("0.2")
    assert fee_for(D(-200), D("0.001")) == D("0.2")
    assert fee_for(D(200), D(0)) == 0


def test_equity_point_is_frozen() -> None:
    point = EquityPoint(TS, D(1), D(1), D(0), D(0))

    with pytest.raises(AttributeError):
        point.equity = D(2)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("equities", "expected"),
    [
        ([], "0"),
        (["100"], "0"),
        (["100", "110", "120"], "0"),
        # 120 -> 90 = 30/120 = 0.25; 130 -> 117 = 13/130 = 0.1
        (["100", "120", "90", "130", "117"], "0.25"),
        # 100 -> 85 = 0.15
        (["100", "85", "100"], "0.15"),
        # non-positive peaks are skipped: 10 -> 5 = 0.5
        (["0", "-5", "10", "5"], "0.5"),
        # below zero: 100 -> -50 = 150/100 = 1.5
        (["100", "-50"], "1.5"),
    ],
)
def test_max_drawdown(equities: list[str], expected: str) -> None:
    assert max_drawdown(D(e) for e in equities) == D(expected)


# --- properties -------------------------------------------------------------------------

money = st.integers(min_value=1, max_value=10**8).map(lambda i: D(i).scaleb(-4))
qty = st.integers(min_value=1, max_value=10**6).map(lambda i: D(i).scaleb(-3))
fees = st.integers(min_value=0, max_value=10**4).map(lambda i: D(i).scaleb(-4))


@given(q=qty, p=money, cash=money)
def test_round_trip_same_price_without_fee_is_neutral(
    q: Decimal, p: Decimal, cash: Decimal
) -> None:
    for first, second in ((Side.BUY, Side.SELL), (Side.SELL, Side.BUY)):
        ledger = Ledger(cash=cash)

        ledger.apply_fill(fill(first, str(q), str(p)))
        realized = ledger.apply_fill(fill(second, str(q), str(p)))

        assert realized == 0
        assert ledger.realized_pnl == 0
        assert ledger.cash == cash
        assert ledger.position("X-Y") == 0
        assert ledger.positions["X-Y"].avg_price == 0
        assert ledger.equity({}) == cash


@given(
    trades=st.lists(st.tuples(st.sampled_from(Side), qty, money, fees), min_size=1, max_size=20),
    mark=money,
    cash=money,
)
def test_equity_equals_cash_plus_realized_plus_unrealized_minus_fees(
    trades: list[tuple[Side, Decimal, Decimal, Decimal]], mark: Decimal, cash: Decimal
) -> None:
    ledger = Ledger(cash=cash)
    net = D(0)
    total_fees = D(0)
    total_realized = D(0)

    for side, q, p, f in trades:
        total_realized += ledger.apply_fill(fill(side, str(q), str(p), str(f)))
        net += side.sign * q
        total_fees += f

    marks = {"X-Y": mark}
    expected = cash + ledger.realized_pnl + ledger.unrealized_pnl(marks) - total_fees
    # exact: quantities and cash; averages divide, so allow rounding in the 28th digit
    assert ledger.position("X-Y") == net
    assert ledger.fees == total_fees
    assert ledger.realized_pnl == total_realized
    assert abs(ledger.equity(marks) - expected) < D("1e-12")
