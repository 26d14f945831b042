"""The mode machine and the mode gate for each kind of order (table-driven)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from apps.model.orders import OrderIntent
from apps.model.values import Side
from apps.risk.domain.checks import RiskContext, check_mode
from apps.risk.domain.modes import SystemMode, mode_change_refusal

N, OB, P, K = SystemMode.NORMAL, SystemMode.OBSERVATION, SystemMode.PAUSE, SystemMode.KILL

# kind -> (side, quantity, position, reduce_only, kill_switch_order)
KINDS = {
    "increase": (Side.BUY, "1", "2", False, False),
    "open": (Side.BUY, "1", "0", False, False),
    "reduce": (Side.SELL, "1", "2", False, False),
    "flip": (Side.SELL, "3", "2", False, False),
    "closing_reduce_only": (Side.SELL, "2", "2", True, False),
    "kill_switch_close": (Side.SELL, "2", "2", True, True),
}
EXPECTED = {
    N: {k: True for k in KINDS},
    OB: {k: False for k in KINDS},
    P: {
        "increase": False,
        "open": False,
        "reduce": True,
        "flip": False,
        "closing_reduce_only": True,
        "kill_switch_close": True,
    },
    K: {
        "increase": False,
        "open": False,
        "reduce": False,
        "flip": False,
        "closing_reduce_only": False,
        "kill_switch_close": True,
    },
}


@pytest.mark.parametrize(
    ("mode", "kind"), [(m, k) for m in SystemMode for k in KINDS], ids=lambda v: str(v)
)
def test_mode_gate_for_each_kind_of_order(mode: SystemMode, kind: str) -> None:
    side, quantity, position, reduce_only, kill_order = KINDS[kind]
    result = check_mode(
        OrderIntent(instrument="BTC-USD", side=side, quantity=D(quantity), reduce_only=reduce_only),
        RiskContext(
            mode=mode,
            last_price=D(100),
            position_quantity=D(position),
            kill_switch_order=kill_order,
        ),
    )
    assert result.passed is EXPECTED[mode][kind], result.detail
    assert result.values["mode"] == mode.value
    assert result.detail.startswith(mode.value)


ALL = dict(staff=True, otp_verified=True, incident_closed=True)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (N, OB, True),
        (N, P, True),
        (OB, N, True),
        (OB, P, True),
        (P, N, True),
        (P, OB, True),
        (N, K, True),
        (OB, K, True),
        (P, K, True),
        (K, K, True),  # re-engage: sweeps again
        (N, N, False),  # nothing would change
        (P, P, False),
        (K, OB, True),  # with staff + otp + closed incident
        (K, N, False),  # only to observation
        (K, P, False),
    ],
)
def test_mode_machine_with_every_credential(
    current: SystemMode, target: SystemMode, allowed: bool
) -> None:
    refusal = mode_change_refusal(current, target, **ALL)
    assert (refusal is None) is allowed, refusal


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("staff", "only a staff user"),
        ("otp_verified", "two-factor"),
        ("incident_closed", "incident report"),
    ],
)
def test_leaving_kill_without_one_credential_is_refused(missing: str, message: str) -> None:
    refusal = mode_change_refusal(K, OB, **{**ALL, missing: False})
    assert refusal is not None
    assert message in refusal


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (OB, N, False),
        (P, N, False),
        (P, OB, False),
        (N, OB, False),
        (K, OB, False),  # even with the latched KILL's own incident closed
        (N, P, True),  # reducing risk stays allowed
        (OB, P, True),
        (K, K, True),
    ],
)
def test_mode_machine_when_a_kills_incident_is_open_then_only_pause_or_kill(
    current: SystemMode, target: SystemMode, allowed: bool
) -> None:
    refusal = mode_change_refusal(current, target, **ALL, open_kill_incident=7)
    assert (refusal is None) is allowed, refusal
    if not allowed:
        assert refusal is not None
        assert "incident #7" in refusal
