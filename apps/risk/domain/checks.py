"""Pre-trade risk checks. A denial is a result (``RiskDecision``), never an exception.

Every check returns a ``CheckResult`` carrying the numbers it used. To keep the check
fast (it runs on every order), a result stores the raw values and a detail template;
``values`` (``{name: str(value)}``) and ``detail`` are formatted when read, which the
decision log does once per decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from apps.model.orders import OrderIntent
from apps.model.values import OrderType, Side
from apps.risk.domain.modes import SystemMode

_ZERO = Decimal(0)
_MINUTE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Ceilings enforced on every order (amounts in the quote currency).

    ``None`` means "not enforced" (the backtest's unlimited run); the live path always
    fills every field from the account's RiskLimit row capped by the settings ceilings.
    ``price_collar_pct`` is a fraction (0.05 = 5 % away from the market's reference
    price, ``RiskContext.last_price``). ``reference_max_age_seconds`` is how old that
    reference may be (``RiskContext.reference_age_seconds``); it comes from the setting
    RISK_REFERENCE_PRICE_MAX_AGE_SECONDS, not from the account's row (it is a property of
    the market data, not a risk appetite). When it is set, an order without a reference
    price, or with a stale one, is denied.
    """

    max_order_notional: Decimal
    max_position_notional: Decimal
    max_gross_exposure: Decimal | None = None
    max_open_positions: int | None = None
    price_collar_pct: Decimal | None = None
    max_orders_per_minute: int | None = None
    duplicate_window_seconds: int | None = None
    reference_max_age_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class RecentOrder:
    """An order the account sent (or queued) lately, for the rate and duplicate guards."""

    instrument: str
    side: Side
    quantity: Decimal
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the check needs to know about the world; passed in, never read.

    ``gross_exposure`` is the sum of ``abs(quantity) * mark`` over the account's
    positions (this instrument's included, at ``last_price``); ``open_positions`` counts
    the non-flat ones; ``orders_last_minute`` the orders created in the 60 s before
    ``now``; ``recent_orders`` those within the duplicate window. ``kill_switch_order``
    marks the kill switch's own closing orders (the only orders KILL lets out).

    ``last_price`` is the market's reference price for the instrument (the feed's last
    trade or close, else the last stored close), which the price collar compares the
    order's price with; ``reference_ts`` is when that price was seen and
    ``reference_age_seconds`` how old it was when the decision was taken (None: no
    reference was found, and ``last_price`` is then only the decision price used to value
    the order; the reference check denies it when references are enforced).
    """

    mode: SystemMode
    last_price: Decimal
    position_quantity: Decimal  # signed, short < 0
    gross_exposure: Decimal = _ZERO
    open_positions: int = 0
    orders_last_minute: int = 0
    recent_orders: tuple[RecentOrder, ...] = ()
    now: datetime | None = None
    kill_switch_order: bool = False
    reference_ts: datetime | None = None
    reference_age_seconds: float | None = None


class CheckResult:
    """Outcome of one check, with the numbers it used (``values``: ``str`` of each).

    Built from ``keys``/``raw`` (the numbers, unformatted) and a ``template`` whose
    ``{name}`` fields are filled from them when ``detail`` is read.
    """

    __slots__ = ("name", "passed", "_template", "_keys", "_raw")

    def __init__(
        self,
        name: str,
        passed: bool,
        template: str,
        keys: tuple[str, ...] = (),
        raw: tuple[object, ...] = (),
    ) -> None:
        self.name = name
        self.passed = passed
        self._template = template
        self._keys = keys
        self._raw = raw

    @property
    def values(self) -> dict[str, str]:
        """Each number the check used, as ``str`` (a Decimal keeps its exact digits)."""
        return {key: str(value) for key, value in zip(self._keys, self._raw, strict=True)}

    @property
    def detail(self) -> str:
        """One line: what was compared with what."""
        if not self._keys:
            return self._template
        return self._template.format_map(dict(zip(self._keys, self._raw, strict=True)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CheckResult):
            return NotImplemented
        return (self.name, self.passed, self.detail, self.values) == (
            other.name,
            other.passed,
            other.detail,
            other.values,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.passed, self.detail))

    def __repr__(self) -> str:
        return f"CheckResult({self.name!r}, passed={self.passed}, detail={self.detail!r})"


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


# --- mode gate ---------------------------------------------------------------------------

_MODE_KEYS = (
    "mode",
    "side",
    "quantity",
    "position_quantity",
    "reduce_only",
    "exposure_reducing",
    "kill_switch_order",
)


def check_mode(intent: OrderIntent, ctx: RiskContext) -> CheckResult:
    """Gate the intent on the system mode.

    NORMAL passes; OBSERVATION fails ("would have sent"); PAUSE passes only
    exposure-reducing intents; KILL passes only the kill switch's own reduce-only
    closing orders (``ctx.kill_switch_order``) that are exposure-reducing.
    """
    reducing = is_exposure_reducing(intent, ctx.position_quantity)
    raw = (
        ctx.mode,
        intent.side,
        intent.quantity,
        ctx.position_quantity,
        intent.reduce_only,
        reducing,
        ctx.kill_switch_order,
    )
    mode = ctx.mode
    if mode is SystemMode.NORMAL:
        return CheckResult("mode_gate", True, "normal", _MODE_KEYS, raw)
    if mode is SystemMode.OBSERVATION:
        return CheckResult("mode_gate", False, "observation: would have sent", _MODE_KEYS, raw)
    if mode is SystemMode.PAUSE:
        if reducing:
            return CheckResult("mode_gate", True, "pause: exposure-reducing order", _MODE_KEYS, raw)
        return CheckResult(
            "mode_gate",
            False,
            "pause: only exposure-reducing orders ({side} {quantity} vs position "
            "{position_quantity})",
            _MODE_KEYS,
            raw,
        )
    if intent.reduce_only and reducing and ctx.kill_switch_order:
        return CheckResult(
            "mode_gate", True, "kill: the kill switch's closing order", _MODE_KEYS, raw
        )
    return CheckResult(
        "mode_gate",
        False,
        "kill: only the kill switch's reduce-only closing orders (reduce_only={reduce_only}, "
        "kill_switch_order={kill_switch_order}, {side} {quantity} vs position "
        "{position_quantity})",
        _MODE_KEYS,
        raw,
    )


# --- size limits -------------------------------------------------------------------------

_NOTIONAL_KEYS = ("quantity", "price", "notional", "limit")


def check_order_notional(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when ``quantity * price`` exceeds ``limits.max_order_notional``."""
    price = order_price(intent, ctx)
    notional = intent.quantity * price
    limit = limits.max_order_notional
    raw = (intent.quantity, price, notional, limit)
    if notional > limit:
        return CheckResult("max_order_notional", False, "{notional} > {limit}", _NOTIONAL_KEYS, raw)
    return CheckResult("max_order_notional", True, "{notional} <= {limit}", _NOTIONAL_KEYS, raw)


_POSITION_KEYS = (
    "position_quantity",
    "projected_quantity",
    "price",
    "projected_notional",
    "limit",
    "exposure_reducing",
)


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
    raw = (ctx.position_quantity, projected, price, notional, limit, reducing)
    if notional <= limit:
        return CheckResult(
            "max_position", True, "{projected_notional} <= {limit}", _POSITION_KEYS, raw
        )
    if reducing:
        return CheckResult(
            "max_position",
            True,
            "{projected_notional} > {limit} but exposure-reducing",
            _POSITION_KEYS,
            raw,
        )
    return CheckResult("max_position", False, "{projected_notional} > {limit}", _POSITION_KEYS, raw)


_GROSS_KEYS = (
    "gross_exposure",
    "instrument_exposure",
    "projected_instrument_exposure",
    "projected_gross_exposure",
    "limit",
    "exposure_reducing",
)


def check_gross_exposure(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when the account's gross exposure after the order exceeds the limit.

    Gross exposure = sum of ``abs(quantity) * mark`` over all positions. The order's
    instrument leaves at ``abs(position) * last_price`` and comes back at
    ``abs(projected) * order price``. An exposure-reducing order always passes.
    """
    limit = limits.max_gross_exposure
    price = order_price(intent, ctx)
    current = abs(ctx.position_quantity) * ctx.last_price
    projected = abs(ctx.position_quantity + intent.side.sign * intent.quantity) * price
    gross_after = ctx.gross_exposure - current + projected
    reducing = is_exposure_reducing(intent, ctx.position_quantity)
    raw = (ctx.gross_exposure, current, projected, gross_after, limit, reducing)
    if limit is None:
        return CheckResult("max_gross_exposure", True, "no limit", _GROSS_KEYS, raw)
    if gross_after <= limit:
        return CheckResult(
            "max_gross_exposure", True, "{projected_gross_exposure} <= {limit}", _GROSS_KEYS, raw
        )
    if reducing:
        return CheckResult(
            "max_gross_exposure",
            True,
            "{projected_gross_exposure} > {limit} but exposure-reducing",
            _GROSS_KEYS,
            raw,
        )
    return CheckResult(
        "max_gross_exposure", False, "{projected_gross_exposure} > {limit}", _GROSS_KEYS, raw
    )


_OPEN_KEYS = ("open_positions", "opens_new_position", "projected_open_positions", "limit")


def check_open_positions(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when the order opens one more position than ``max_open_positions`` allows.

    Only an order on a flat instrument opens a position; adding to, reducing or
    flipping an existing one leaves the count unchanged.
    """
    limit = limits.max_open_positions
    opens = ctx.position_quantity == 0
    projected = ctx.open_positions + 1 if opens else ctx.open_positions
    raw = (ctx.open_positions, opens, projected, limit)
    if limit is None:
        return CheckResult("max_open_positions", True, "no limit", _OPEN_KEYS, raw)
    if not opens or projected <= limit:
        return CheckResult(
            "max_open_positions", True, "{projected_open_positions} <= {limit}", _OPEN_KEYS, raw
        )
    return CheckResult(
        "max_open_positions", False, "{projected_open_positions} > {limit}", _OPEN_KEYS, raw
    )


# --- price and flow guards ---------------------------------------------------------------

_REFERENCE_KEYS = ("reference_price", "reference_ts", "age_seconds", "max_age_seconds")


def check_reference_price(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when there is no market reference price, or when it is older than
    ``limits.reference_max_age_seconds`` (the collar would compare with a stale price).

    Not enforced (passes, "no limit") when ``reference_max_age_seconds`` is None: the
    backtest, whose ``last_price`` is the bar's close by construction.
    """
    limit = limits.reference_max_age_seconds
    age = ctx.reference_age_seconds
    known = age is not None
    raw = (
        ctx.last_price if known else "none",
        ctx.reference_ts.isoformat() if ctx.reference_ts is not None else "none",
        round(age, 3) if age is not None else "none",
        limit,
    )
    if limit is None:
        return CheckResult("reference_price", True, "no limit", _REFERENCE_KEYS, raw)
    if age is None:
        return CheckResult(
            "reference_price",
            False,
            "no reference price: no last trade from the feed and no stored close",
            _REFERENCE_KEYS,
            raw,
        )
    if age > limit:
        return CheckResult(
            "reference_price",
            False,
            "reference price {reference_price} is {age_seconds} s old > {max_age_seconds} s",
            _REFERENCE_KEYS,
            raw,
        )
    return CheckResult(
        "reference_price", True, "{age_seconds} s old <= {max_age_seconds} s", _REFERENCE_KEYS, raw
    )


_COLLAR_KEYS = ("price", "last_price", "deviation", "limit")


def check_price_collar(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when the order's price is further than ``price_collar_pct`` from the market's
    reference price (``ctx.last_price``).

    The order's price is its limit price, else the price it was decided at
    (``decision_price``), else the last price. Deviation = ``|price - last| / last``
    (a fraction). A non-positive last price fails: nothing can be valued against it;
    so does a missing reference when references are enforced
    (``limits.reference_max_age_seconds`` set and ``ctx.reference_age_seconds`` None):
    a collar that has nothing to compare with does not pass.
    """
    limit = limits.price_collar_pct
    if intent.order_type is OrderType.LIMIT and intent.limit_price is not None:
        price = intent.limit_price
    else:
        price = intent.decision_price if intent.decision_price is not None else ctx.last_price
    last = ctx.last_price
    if limits.reference_max_age_seconds is not None and ctx.reference_age_seconds is None:
        raw: tuple[object, ...] = (price, "none", "n/a", limit)
        return CheckResult(
            "price_collar", False, "no reference price to compare {price} with", _COLLAR_KEYS, raw
        )
    if last <= 0:
        raw = (price, last, "n/a", limit)
        return CheckResult(
            "price_collar", False, "no valid last price ({last_price})", _COLLAR_KEYS, raw
        )
    deviation = abs(price - last) / last
    raw = (price, last, deviation, limit)
    if limit is None:
        return CheckResult("price_collar", True, "no limit", _COLLAR_KEYS, raw)
    if deviation <= limit:
        return CheckResult("price_collar", True, "{deviation} <= {limit}", _COLLAR_KEYS, raw)
    return CheckResult(
        "price_collar",
        False,
        "{price} is {deviation} from last {last_price} > {limit}",
        _COLLAR_KEYS,
        raw,
    )


_RATE_KEYS = ("orders_last_minute", "projected", "limit")


def check_order_rate(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when this order would be more than ``max_orders_per_minute`` in 60 s."""
    limit = limits.max_orders_per_minute
    projected = ctx.orders_last_minute + 1
    raw = (ctx.orders_last_minute, projected, limit)
    if limit is None:
        return CheckResult("max_orders_per_minute", True, "no limit", _RATE_KEYS, raw)
    if projected <= limit:
        return CheckResult("max_orders_per_minute", True, "{projected} <= {limit}", _RATE_KEYS, raw)
    return CheckResult("max_orders_per_minute", False, "{projected} > {limit}", _RATE_KEYS, raw)


_DUP_KEYS = ("instrument", "side", "quantity", "window_seconds", "duplicate_age_seconds")


def check_duplicate(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> CheckResult:
    """Fail when an order with the same instrument, side and quantity is younger than the window.

    Ages are ``ctx.now - created_at`` in seconds; without ``now`` the guard cannot
    age anything and treats every recent order as inside the window.
    """
    window = limits.duplicate_window_seconds
    age: object = "none"
    if window is not None:
        for recent in ctx.recent_orders:
            if (
                recent.instrument == intent.instrument
                and recent.side is intent.side
                and recent.quantity == intent.quantity
            ):
                seconds = (
                    (ctx.now - recent.created_at).total_seconds() if ctx.now is not None else 0.0
                )
                if seconds <= window:
                    age = round(seconds, 3)
                    break
    raw = (intent.instrument, intent.side, intent.quantity, window, age)
    if window is None:
        return CheckResult("duplicate_order", True, "no limit", _DUP_KEYS, raw)
    if age == "none":
        return CheckResult(
            "duplicate_order", True, "no same order in {window_seconds} s", _DUP_KEYS, raw
        )
    return CheckResult(
        "duplicate_order",
        False,
        "same {instrument} {side} {quantity} {duplicate_age_seconds} s ago "
        "(window {window_seconds} s)",
        _DUP_KEYS,
        raw,
    )


CHECK_NAMES = (
    "mode_gate",
    "max_order_notional",
    "max_position",
    "max_gross_exposure",
    "max_open_positions",
    "reference_price",
    "price_collar",
    "max_orders_per_minute",
    "duplicate_order",
)


def order_check(*, intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> RiskDecision:
    """Run every pre-trade check on ``intent`` and record each result.

    Parameters
    ----------
    intent
        The validated order intent.
    ctx
        Mode, the market's reference price and its age, position, account exposure
        and recent order flow.
    limits
        The ceilings to enforce.

    Returns
    -------
    RiskDecision
        ``approved`` iff every check in ``CHECK_NAMES`` passed; all results are in
        ``checks`` (in that order) either way.
    """
    checks = (
        check_mode(intent, ctx),
        check_order_notional(intent, ctx, limits),
        check_position(intent, ctx, limits),
        check_gross_exposure(intent, ctx, limits),
        check_open_positions(intent, ctx, limits),
        check_reference_price(intent, ctx, limits),
        check_price_collar(intent, ctx, limits),
        check_order_rate(intent, ctx, limits),
        check_duplicate(intent, ctx, limits),
    )
    approved = True
    for check in checks:
        if not check.passed:
            approved = False
            break
    return RiskDecision(approved=approved, checks=checks)


def limits_as_strings(limits: RiskLimits) -> Mapping[str, str | None]:
    """The limits as ``{field: str | None}`` (JSON-ready)."""
    return {
        name: None if getattr(limits, name) is None else str(getattr(limits, name))
        for name in RiskLimits.__slots__
    }
