"""Pre-trade risk checks. A denial is a result (``RiskDecision``), never an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from apps.risk.domain.modes import SystemMode
from apps.trading.domain.orders import OrderIntent
from apps.trading.domain.values import OrderType


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Ceilings enforced on every order (amounts in the quote currency)."""

    max_order_notional: Decimal
    max_position_notional: Decimal


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the check needs to know about the world; passed in, never read."""

    mode: SystemMode
    last_price: Decimal
    position_quantity: Decimal  # signed, short < 0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one check, with the numbers it used as ``str(Decimal)``."""

    name: str
    passed: bool
    detail: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """All check results for one intent; approved iff every check passed."""

    approved: bool
    checks: tuple[CheckResult, ...]

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """Return the checks that did not pass."""
        return tuple(check for check in self.checks if not check.passed)

    @property
    def reason(self) -> str:
        """Return ``"name: detail"`` of each failed check joined by ``"; "`` ("" if approved)."""
        return "; ".join(f"{check.name}: {check.detail}" for check in self.failed)


def is_exposure_reducing(intent: OrderIntent, position_quantity: Decimal) -> bool:
    """Return True if ``intent`` only shrinks the current position.

    That is: its side is opposite to the position's sign and its quantity is at most
    ``abs(position_quantity)``. Nothing reduces a flat position.

    Parameters
    ----------
    intent
        The order intent.
    position_quantity
        Current signed position.
    """
    if position_quantity == 0:
        return False
    position_sign = 1 if position_quantity > 0 else -1
    return intent.side.sign == -position_sign and intent.quantity <= abs(position_quantity)


def order_price(intent: OrderIntent, ctx: RiskContext) -> Decimal:
    """Return the price an intent is valued at: its limit price, else the last price."""
    if intent.order_type is OrderType.LIMIT and intent.limit_price is not None:
        return intent.limit_price
    return ctx.last_price


def check_mode(intent: OrderIntent, ctx: RiskContext) -> CheckResult:
    """Gate the intent on the system mode.

    NORMAL passes; OBSERVATION fails ("would have sent"); PAUSE passes only
    exposure-reducing intents; KILL passes only reduce-only intents that are
    exposure-reducing.
    """
    reducing = is_exposure_reducing(intent, ctx.position_quantity)
    values = {
        "mode": str(ctx.mode),
        "side": str(intent.side),
        "quantity": str(intent.quantity),
        "position_quantity": str(ctx.position_quantity),
        "reduce_only": str(intent.reduce_only),
        "exposure_reducing": str(reducing),
    }
    mode = ctx.mode
    if mode is SystemMode.NORMAL:
        return CheckResult("mode_gate", True, "normal", values)
    if mode is SystemMode.OBSERVATION:
        return CheckResult("mode_gate", False, "observation: would have sent", values)
    if mode is SystemMode.PAUSE:
        if reducing:
            return CheckResult("mode_gate", True, "pause: exposure-reducing order", values)
        return CheckResult(
            "mode_gate",
            False,
            f"pause: only exposure-reducing orders ({intent.side} {intent.quantity} "
            f"vs position {ctx.position_quantity})",
            values,
        )
    if intent.reduce_only and reducing:
        return CheckResult("mode_gate", True, "kill: reduce-only closing order", values)
    return CheckResult(
        "mode_gate",
        False,
        f"kill: only reduce-only closing orders (reduce_only={intent.reduce_only}, "
        f"{intent.side} {intent.quantity} vs position {ctx.position_quantity})",
        values,
    )


def check_order_notional(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when ``quantity * price`` exceeds ``limits.max_order_notional``."""
    price = order_price(intent, ctx)
    notional = intent.quantity * price
    limit = limits.max_order_notional
    values = {
        "quantity": str(intent.quantity),
        "price": str(price),
        "notional": str(notional),
        "limit": str(limit),
    }
    if notional > limit:
        return CheckResult("max_order_notional", False, f"{notional} > {limit}", values)
    return CheckResult("max_order_notional", True, f"{notional} <= {limit}", values)


def check_position(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when the position after the order is worth more than the limit.

    The projected position is valued at the order price. An exposure-reducing order
    always passes, so a position already over the limit can still be reduced.
    """
    price = order_price(intent, ctx)
    projected = ctx.position_quantity + intent.side.sign * intent.quantity
    notional = abs(projected) * price
    limit = limits.max_position_notional
    reducing = is_exposure_reducing(intent, ctx.position_quantity)
    values = {
        "position_quantity": str(ctx.position_quantity),
        "projected_quantity": str(projected),
        "price": str(price),
        "projected_notional": str(notional),
        "limit": str(limit),
        "exposure_reducing": str(reducing),
    }
    if notional <= limit:
        return CheckResult("max_position", True, f"{notional} <= {limit}", values)
    if reducing:
        return CheckResult(
            "max_position", True, f"{notional} > {limit} but exposure-reducing", values
        )
    return CheckResult("max_position", False, f"{notional} > {limit}", values)


def order_check(*, intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> RiskDecision:
    """Run every pre-trade check on ``intent`` and record each result.

    Parameters
    ----------
    intent
        The validated order intent.
    ctx
        Mode, last price and current position.
    limits
        The ceilings to enforce.

    Returns
    -------
    RiskDecision
        ``approved`` iff all of mode_gate, max_order_notional and max_position passed;
        all three results are in ``checks`` either way.
    """
    checks = (
        check_mode(intent, ctx),
        check_order_notional(intent, ctx, limits),
        check_position(intent, ctx, limits),
    )
    return RiskDecision(approved=all(check.passed for check in checks), checks=checks)
