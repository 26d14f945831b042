"""Each pre-trade limit beyond notional/position: passing and failing, with its numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from apps.model.orders import OrderIntent
from apps.model.values import OrderType, Side
from apps.risk.domain.checks import (
    RecentOrder,
    RiskContext,
    RiskLimits,
    order_check,
)
from apps.risk.domain.modes import SystemMode

NOW = datetime(2020, 3, 12, 10, 0, tzinfo=UTC)
LIMITS = RiskLimits(
    max_order_notional=D(100_000),
    max_position_notional=D(100_000),
    max_gross_exposure=D(5000),
    max_open_positions=2,
    price_collar_pct=D("0.05"),
    max_orders_per_minute=3,
    duplicate_window_seconds=10,
)


def intent(side: Side = Side.BUY, quantity: str = "1", **kw: object) -> OrderIntent:
    return OrderIntent(instrument="BTC-USD", side=side, quantity=D(quantity), **kw)  # type: ignore[arg-type]


def ctx(**kw: object) -> RiskContext:
    base: dict[str, object] = {
        "mode": SystemMode.NORMAL,
        "last_price": D(100),
        "position_quantity": D(0),
        "now": NOW,
    }
    base.update(kw)
    return RiskContext(**base)  # type: ignore[arg-type]


def check(name: str, i: OrderIntent, c: RiskContext, limits: RiskLimits = LIMITS):  # noqa: ANN201
    decision = order_check(intent=i, ctx=c, limits=limits)
    result = {r.name: r for r in decision.checks}[name]
    return decision, result


# --- max_gross_exposure ------------------------------------------------------------------


def test_gross_exposure_within_limit_passes() -> None:
    # 4000 held elsewhere + 10 * 100 = 5000 <= 5000
    _, r = check("max_gross_exposure", intent(quantity="10"), ctx(gross_exposure=D(4000)))
    assert r.passed
    assert r.values["projected_gross_exposure"] == "5000"
    assert r.detail == "5000 <= 5000"


def test_gross_exposure_over_limit_fails_with_numbers() -> None:
    decision, r = check("max_gross_exposure", intent(quantity="11"), ctx(gross_exposure=D(4000)))
    assert not decision.approved
    assert not r.passed
    assert r.detail == "5100 > 5000"
    assert r.values == {
        "gross_exposure": "4000",
        "instrument_exposure": "0",
        "projected_instrument_exposure": "1100",
        "projected_gross_exposure": "5100",
        "limit": "5000",
        "exposure_reducing": "False",
    }
    assert "max_gross_exposure: 5100 > 5000" in decision.reason


def test_gross_exposure_counts_this_instrument_once() -> None:
    # Holding 30 @ 100 (3000, inside the 6000 gross); buying 5 more: 6000 - 3000 + 3500 = 6500.
    _, r = check(
        "max_gross_exposure",
        intent(quantity="5"),
        ctx(gross_exposure=D(6000), position_quantity=D(30)),
        LIMITS,
    )
    assert not r.passed
    assert r.values["projected_gross_exposure"] == "6500"


def test_gross_exposure_over_limit_but_reducing_passes() -> None:
    _, r = check(
        "max_gross_exposure",
        intent(Side.SELL, "10"),
        ctx(gross_exposure=D(9000), position_quantity=D(30)),
    )
    assert r.passed
    assert r.detail.endswith("but exposure-reducing")


# --- max_open_positions ------------------------------------------------------------------


def test_open_positions_new_one_within_limit_passes() -> None:
    _, r = check("max_open_positions", intent(), ctx(open_positions=1))
    assert r.passed
    assert r.values == {
        "open_positions": "1",
        "opens_new_position": "True",
        "projected_open_positions": "2",
        "limit": "2",
    }


def test_open_positions_new_one_over_limit_fails() -> None:
    decision, r = check("max_open_positions", intent(), ctx(open_positions=2))
    assert not decision.approved
    assert r.detail == "3 > 2"


def test_open_positions_adding_to_a_held_one_passes_at_the_limit() -> None:
    _, r = check("max_open_positions", intent(), ctx(open_positions=2, position_quantity=D(1)))
    assert r.passed
    assert r.values["opens_new_position"] == "False"


# --- reference_price ---------------------------------------------------------------------

REFERENCED = RiskLimits(
    max_order_notional=D(100_000),
    max_position_notional=D(100_000),
    price_collar_pct=D("0.05"),
    reference_max_age_seconds=300,
)


def test_reference_price_fresh_passes_with_its_price_time_and_age() -> None:
    seen = NOW - timedelta(seconds=12)
    _, r = check(
        "reference_price",
        intent(decision_price=D(101)),
        ctx(reference_ts=seen, reference_age_seconds=12.0),
        REFERENCED,
    )
    assert r.passed
    assert r.values == {
        "reference_price": "100",
        "reference_ts": seen.isoformat(),
        "age_seconds": "12.0",
        "max_age_seconds": "300",
    }


def test_reference_price_stale_fails_with_its_age() -> None:
    decision, r = check(
        "reference_price",
        intent(decision_price=D(100)),
        ctx(reference_ts=NOW - timedelta(seconds=301), reference_age_seconds=301.0),
        REFERENCED,
    )
    assert not r.passed
    assert r.detail == "reference price 100 is 301.0 s old > 300 s"
    assert [c.name for c in decision.failed] == ["reference_price"]


def test_reference_price_missing_fails_and_the_collar_does_not_pass_without_it() -> None:
    decision, r = check("reference_price", intent(decision_price=D(100)), ctx(), REFERENCED)
    assert not r.passed
    assert r.values["reference_price"] == "none"
    assert [c.name for c in decision.failed] == ["reference_price", "price_collar"]
    collar = {c.name: c for c in decision.checks}["price_collar"]
    assert collar.detail == "no reference price to compare 100 with"


def test_reference_price_not_enforced_without_a_max_age() -> None:
    _, r = check("reference_price", intent(), ctx(), LIMITS)
    assert r.passed
    assert r.detail == "no limit"


def test_price_collar_compares_with_the_reference_not_the_decision_price() -> None:
    # The order was decided at 20; the market's reference is 10: 100 % away.
    _, r = check(
        "price_collar",
        intent(decision_price=D(20)),
        ctx(last_price=D(10), reference_ts=NOW, reference_age_seconds=0.0),
        REFERENCED,
    )
    assert not r.passed
    assert (r.values["price"], r.values["last_price"], r.values["deviation"]) == ("20", "10", "1")


# --- price_collar ------------------------------------------------------------------------


def test_price_collar_limit_order_inside_passes() -> None:
    _, r = check("price_collar", intent(order_type=OrderType.LIMIT, limit_price=D("105")), ctx())
    assert r.passed
    assert r.values == {"price": "105", "last_price": "100", "deviation": "0.05", "limit": "0.05"}


def test_price_collar_limit_order_outside_fails_with_numbers() -> None:
    decision, r = check(
        "price_collar", intent(order_type=OrderType.LIMIT, limit_price=D("94")), ctx()
    )
    assert not decision.approved
    assert r.values["deviation"] == "0.06"
    assert r.detail == "94 is 0.06 from last 100 > 0.05"


def test_price_collar_market_order_uses_its_decision_price() -> None:
    _, r = check("price_collar", intent(decision_price=D("110")), ctx())
    assert not r.passed
    assert r.values["price"] == "110"


def test_price_collar_without_valid_last_price_fails() -> None:
    _, r = check("price_collar", intent(), ctx(last_price=D(0)))
    assert not r.passed
    assert "no valid last price" in r.detail


# --- max_orders_per_minute ---------------------------------------------------------------


def test_order_rate_at_limit_passes() -> None:
    _, r = check("max_orders_per_minute", intent(), ctx(orders_last_minute=2))
    assert r.passed
    assert r.values == {"orders_last_minute": "2", "projected": "3", "limit": "3"}


def test_order_rate_over_limit_fails() -> None:
    decision, r = check("max_orders_per_minute", intent(), ctx(orders_last_minute=3))
    assert not decision.approved
    assert r.detail == "4 > 3"


# --- duplicate_order ---------------------------------------------------------------------


def recent(side: Side = Side.BUY, quantity: str = "1", age: float = 3.0) -> RecentOrder:
    return RecentOrder("BTC-USD", side, D(quantity), NOW - timedelta(seconds=age))


def test_duplicate_same_order_inside_window_fails_with_age() -> None:
    decision, r = check("duplicate_order", intent(), ctx(recent_orders=(recent(age=3),)))
    assert not decision.approved
    assert r.values["duplicate_age_seconds"] == "3.0"
    assert r.detail == "same BTC-USD buy 1 3.0 s ago (window 10 s)"


@pytest.mark.parametrize(
    "other",
    [
        recent(age=11),  # outside the window
        recent(side=Side.SELL),  # other side
        recent(quantity="1.5"),  # other quantity
        RecentOrder("ETH-USD", Side.BUY, D(1), NOW),  # other instrument
    ],
)
def test_duplicate_guard_passes_a_different_or_old_order(other: RecentOrder) -> None:
    _, r = check("duplicate_order", intent(), ctx(recent_orders=(other,)))
    assert r.passed
    assert r.values["duplicate_age_seconds"] == "none"


def test_unset_limits_pass_and_say_so() -> None:
    limits = RiskLimits(max_order_notional=D(1000), max_position_notional=D(1000))
    decision = order_check(intent=intent(), ctx=ctx(), limits=limits)
    assert decision.approved
    details = {r.name: r.detail for r in decision.checks}
    for name in ("max_gross_exposure", "max_open_positions", "price_collar"):
        assert details[name] == "no limit"
