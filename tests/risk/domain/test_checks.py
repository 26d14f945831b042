from __future__ import annotations

from decimal import Decimal

import pytest

from apps.model.orders import OrderIntent
from apps.model.values import OrderType, Side
from apps.risk.domain.checks import (
    CHECK_NAMES,
    CheckResult,
    RiskContext,
    RiskDecision,
    RiskLimits,
    is_exposure_reducing,
    order_check,
)
from apps.risk.domain.modes import SystemMode

D = Decimal
LIMITS = RiskLimits(max_order_notional=D(1000), max_position_notional=D(2000))


def intent(
    side: Side = Side.BUY, quantity: str = "1", limit: str | None = None, reduce_only: bool = False
) -> OrderIntent:
    return OrderIntent(
        instrument="ETH-BTC",
        side=side,
        quantity=D(quantity),
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        limit_price=D(limit) if limit else None,
        reduce_only=reduce_only,
    )


def ctx(
    mode: SystemMode = SystemMode.NORMAL,
    price: str = "100",
    position: str = "0",
    kill_switch_order: bool = False,
) -> RiskContext:
    return RiskContext(
        mode=mode,
        last_price=D(price),
        position_quantity=D(position),
        kill_switch_order=kill_switch_order,
    )


def by_name(decision: RiskDecision) -> dict[str, CheckResult]:
    return {check.name: check for check in decision.checks}


def test_all_checks_pass_in_normal_mode() -> None:
    # Act
    decision = order_check(intent=intent(quantity="5"), ctx=ctx(), limits=LIMITS)

    # Assert
    assert decision.approved
    assert [c.name for c in decision.checks] == list(CHECK_NAMES)
    assert CHECK_NAMES[:3] == ("mode_gate", "max_order_notional", "max_position")
    assert decision.failed == ()
    assert decision.reason == ""
    assert by_name(decision)["max_order_notional"].values == {
        "quantity": "5",
        "price": "100",
        "notional": "500",
        "limit": "1000",
    }


# --- exposure-reducing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "quantity", "position", "expected"),
    [
        (Side.SELL, "1", "3", True),
        (Side.SELL, "3", "3", True),
        (Side.SELL, "4", "3", False),  # would flip short
        (Side.BUY, "1", "3", False),  # adds
        (Side.BUY, "2", "-2", True),
        (Side.BUY, "2.1", "-2", False),
        (Side.SELL, "1", "-2", False),
        (Side.BUY, "1", "0", False),
        (Side.SELL, "1", "0", False),
    ],
)
def test_is_exposure_reducing(side: Side, quantity: str, position: str, expected: bool) -> None:
    assert is_exposure_reducing(intent(side, quantity), D(position)) is expected


# --- mode gate --------------------------------------------------------------------------


def test_observation_fails_would_have_sent() -> None:
    decision = order_check(intent=intent(), ctx=ctx(SystemMode.OBSERVATION), limits=LIMITS)

    assert not decision.approved
    gate = by_name(decision)["mode_gate"]
    assert not gate.passed
    assert gate.detail == "observation: would have sent"
    assert decision.reason == "mode_gate: observation: would have sent"
    # the other checks still ran and passed
    assert by_name(decision)["max_order_notional"].passed
    assert by_name(decision)["max_position"].passed


def test_observation_fails_even_reducing_orders() -> None:
    decision = order_check(
        intent=intent(Side.SELL, "1", reduce_only=True),
        ctx=ctx(SystemMode.OBSERVATION, position="2"),
        limits=LIMITS,
    )

    assert not decision.approved


def test_pause_passes_exposure_reducing_order() -> None:
    decision = order_check(
        intent=intent(Side.SELL, "2"), ctx=ctx(SystemMode.PAUSE, position="5"), limits=LIMITS
    )

    assert decision.approved
    assert by_name(decision)["mode_gate"].values["exposure_reducing"] == "True"


@pytest.mark.parametrize(
    ("side", "quantity", "position"),
    [(Side.BUY, "1", "5"), (Side.SELL, "6", "5"), (Side.BUY, "1", "0"), (Side.SELL, "1", "0")],
)
def test_pause_fails_order_that_is_not_exposure_reducing(
    side: Side, quantity: str, position: str
) -> None:
    decision = order_check(
        intent=intent(side, quantity), ctx=ctx(SystemMode.PAUSE, position=position), limits=LIMITS
    )

    assert not decision.approved
    gate = by_name(decision)["mode_gate"]
    assert gate.detail.startswith("pause: only exposure-reducing orders")
    assert f"{side} {quantity} vs position {position}" in gate.detail
    assert gate.values["position_quantity"] == position
    assert gate.values["quantity"] == quantity


def test_kill_passes_the_kill_switchs_reduce_only_closing_order() -> None:
    decision = order_check(
        intent=intent(Side.BUY, "3", reduce_only=True),
        ctx=ctx(SystemMode.KILL, position="-3", kill_switch_order=True),
        limits=LIMITS,
    )

    assert decision.approved
    assert by_name(decision)["mode_gate"].detail == "kill: the kill switch's closing order"


@pytest.mark.parametrize(
    ("side", "quantity", "position", "reduce_only"),
    [
        (Side.SELL, "3", "3", True),  # a strategy's own reduce-only exit: not the kill switch's
        (Side.SELL, "1", "3", False),  # reducing but not flagged reduce_only
        (Side.BUY, "1", "3", True),  # flagged but would add
        (Side.SELL, "1", "0", True),  # flagged but nothing to reduce
        (Side.BUY, "1", "0", False),
    ],
)
def test_kill_fails_everything_else(
    side: Side, quantity: str, position: str, reduce_only: bool
) -> None:
    decision = order_check(
        intent=intent(side, quantity, reduce_only=reduce_only),
        ctx=ctx(SystemMode.KILL, position=position),
        limits=LIMITS,
    )

    assert not decision.approved
    gate = by_name(decision)["mode_gate"]
    assert gate.detail.startswith("kill: only the kill switch's reduce-only closing orders")
    assert gate.values["reduce_only"] == str(reduce_only)


# --- max_order_notional -----------------------------------------------------------------


def test_max_order_notional_at_limit_passes() -> None:
    decision = order_check(intent=intent(quantity="10"), ctx=ctx(), limits=LIMITS)

    check = by_name(decision)["max_order_notional"]
    assert check.passed
    assert check.detail == "1000 <= 1000"


def test_max_order_notional_over_limit_fails_and_names_numbers() -> None:
    decision = order_check(intent=intent(quantity="15"), ctx=ctx(), limits=LIMITS)

    assert not decision.approved
    check = by_name(decision)["max_order_notional"]
    assert not check.passed
    assert check.detail == "1500 > 1000"
    assert check.values == {"quantity": "15", "price": "100", "notional": "1500", "limit": "1000"}
    assert decision.reason == "max_order_notional: 1500 > 1000"
    assert decision.failed == (check,)


def test_limit_order_is_valued_at_its_limit_price() -> None:
    # 8 * 130 = 1040 > 1000 although 8 * last 100 = 800 would pass
    decision = order_check(intent=intent(quantity="8", limit="130"), ctx=ctx(), limits=LIMITS)

    check = by_name(decision)["max_order_notional"]
    assert not check.passed
    assert check.values["price"] == "130"
    assert check.detail == "1040 > 1000"


# --- max_position -----------------------------------------------------------------------


def test_max_position_passes_within_limit() -> None:
    # projected 12 + 8 = 20; 20 * 100 = 2000 <= 2000
    decision = order_check(intent=intent(quantity="8"), ctx=ctx(position="12"), limits=LIMITS)

    check = by_name(decision)["max_position"]
    assert check.passed
    assert check.values["projected_quantity"] == "20"
    assert check.values["projected_notional"] == "2000"


def test_max_position_fails_over_limit_and_names_numbers() -> None:
    # projected 15 + 6 = 21; 21 * 100 = 2100 > 2000
    decision = order_check(intent=intent(quantity="6"), ctx=ctx(position="15"), limits=LIMITS)

    assert not decision.approved
    check = by_name(decision)["max_position"]
    assert not check.passed
    assert check.detail == "2100 > 2000"
    assert check.values == {
        "position_quantity": "15",
        "projected_quantity": "21",
        "price": "100",
        "projected_notional": "2100",
        "limit": "2000",
        "exposure_reducing": "False",
    }
    assert decision.reason == "max_position: 2100 > 2000"


def test_max_position_counts_short_exposure() -> None:
    # projected -15 - 6 = -21; abs * 100 = 2100 > 2000
    decision = order_check(intent=intent(Side.SELL, "6"), ctx=ctx(position="-15"), limits=LIMITS)

    assert by_name(decision)["max_position"].detail == "2100 > 2000"


def test_max_position_lets_oversized_position_be_reduced() -> None:
    # position 30 (3000 > 2000 already); selling 5 leaves 25 -> 2500 but reduces exposure
    decision = order_check(intent=intent(Side.SELL, "5"), ctx=ctx(position="30"), limits=LIMITS)

    check = by_name(decision)["max_position"]
    assert check.passed
    assert check.detail == "2500 > 2000 but exposure-reducing"
    assert decision.approved


def test_every_check_runs_and_all_failures_are_reported() -> None:
    decision = order_check(
        intent=intent(quantity="25"), ctx=ctx(SystemMode.OBSERVATION), limits=LIMITS
    )

    assert not decision.approved
    assert [c.name for c in decision.failed] == ["mode_gate", "max_order_notional", "max_position"]
    assert decision.reason == (
        "mode_gate: observation: would have sent; "
        "max_order_notional: 2500 > 1000; "
        "max_position: 2500 > 2000"
    )


def test_decision_values_are_decimal_strings() -> None:
    decision = order_check(intent=intent(quantity="0.5"), ctx=ctx(price="0.0123"), limits=LIMITS)

    for check in decision.checks:
        assert all(isinstance(v, str) for v in check.values.values())
    # 0.5 * 0.0123 = 0.00615 exactly
    assert by_name(decision)["max_order_notional"].values["notional"] == "0.00615"
