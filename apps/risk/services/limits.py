"""Per-account risk limits: setting them within the settings ranges, and reading them capped by the ceilings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.risk.domain.checks import RiskLimits
from apps.risk.exceptions import RiskLimitInvalid
from apps.risk.models import RiskLimit
from apps.risk.services.common import refuse


@dataclass(frozen=True)
class LimitSpec:
    kind: type  # Decimal or int
    minimum: Decimal
    ceiling_setting: str
    required: bool = False
    floor_setting: str = ""  # the duplicate window: a minimum set in settings
    exclusive_minimum: bool = False


LIMIT_SPECS: dict[str, LimitSpec] = {
    "max_order_notional": LimitSpec(
        Decimal,
        Decimal(0),
        "RISK_CEILING_MAX_ORDER_NOTIONAL",
        required=True,
        exclusive_minimum=True,
    ),
    "max_position_notional": LimitSpec(
        Decimal,
        Decimal(0),
        "RISK_CEILING_MAX_POSITION_NOTIONAL",
        required=True,
        exclusive_minimum=True,
    ),
    "max_gross_exposure": LimitSpec(
        Decimal, Decimal(0), "RISK_CEILING_MAX_GROSS_EXPOSURE", exclusive_minimum=True
    ),
    "max_open_positions": LimitSpec(int, Decimal(0), "RISK_CEILING_MAX_OPEN_POSITIONS"),
    "price_collar_pct": LimitSpec(
        Decimal, Decimal(0), "RISK_CEILING_PRICE_COLLAR_PCT", exclusive_minimum=True
    ),
    "max_orders_per_minute": LimitSpec(int, Decimal(1), "RISK_CEILING_MAX_ORDERS_PER_MINUTE"),
    "duplicate_window_seconds": LimitSpec(
        int,
        Decimal(0),
        "RISK_MAX_DUPLICATE_WINDOW_SECONDS",
        floor_setting="RISK_MIN_DUPLICATE_WINDOW_SECONDS",
    ),
}


def limit_ranges() -> dict[str, dict[str, str]]:
    """``{field: {"min": ..., "max": ..., "min_exclusive": "true"|"false"}}`` from settings."""
    out = {}
    for name, spec in LIMIT_SPECS.items():
        low = getattr(settings, spec.floor_setting) if spec.floor_setting else spec.minimum
        out[name] = {
            "min": str(low),
            "max": str(getattr(settings, spec.ceiling_setting)),
            "min_exclusive": "true" if spec.exclusive_minimum else "false",
        }
    return out


def _limit_parse(name: str, raw: object) -> Decimal | int | None:
    spec = LIMIT_SPECS.get(name)
    if spec is None:
        raise RiskLimitInvalid(
            f"unknown risk limit {name!r}: use one of {', '.join(LIMIT_SPECS)}", field=name
        )
    text = "" if raw is None else str(raw).strip()
    low = getattr(settings, spec.floor_setting) if spec.floor_setting else spec.minimum
    high = getattr(settings, spec.ceiling_setting)
    bracket = "(" if spec.exclusive_minimum else "["
    allowed = f"{bracket}{low}, {high}]"
    if not text:
        if spec.required:
            raise RiskLimitInvalid(f"{name} is required: a number in {allowed}", field=name)
        return None  # the settings ceiling applies
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RiskLimitInvalid(
            f"{name}={text!r} is not a number: use one in {allowed}", field=name
        ) from None
    if not value.is_finite() or (spec.kind is int and value != value.to_integral_value()):
        kind = "a whole number" if spec.kind is int else "a finite number"
        raise RiskLimitInvalid(f"{name}={text!r} must be {kind} in {allowed}", field=name)
    too_low = value <= low if spec.exclusive_minimum else value < low
    if too_low or value > high:
        raise RiskLimitInvalid(f"{name}={text} is out of range: allowed {allowed}", field=name)
    if spec.kind is int:
        return int(value)
    # What the column keeps: a value with more decimals would be rounded (or refused by
    # the model's validation), so say so instead (1e-30 is not 0).
    places = RiskLimit._meta.get_field(name).decimal_places  # type: ignore[union-attr]
    fits = value.quantize(Decimal(1).scaleb(-places)) == value
    if not fits:
        raise RiskLimitInvalid(
            f"{name}={text} has too many decimal places: at most {places}", field=name
        )
    return value


def risk_limit_set(*, account_id: int, values: dict[str, str], actor: str) -> RiskLimit:
    """Set some of an account's risk limits, each within its settings range; audited.

    ``values`` maps field names to strings; an empty string resets an optional limit
    to its settings ceiling. Every value is checked before anything is written.

    Raises
    ------
    RiskLimitInvalid
        An unknown field, a bad number or one out of range (the message names the
        field and the allowed range). The attempt is audited, nothing is changed.
    """
    data: dict[str, Any] = {
        "target": str(account_id),
        "account_id": account_id,
        "values": {str(k): str(v) for k, v in (values or {}).items()},
    }
    try:
        if not values:
            raise RiskLimitInvalid(f"no limit given: set one of {', '.join(LIMIT_SPECS)}")
        parsed = {name: _limit_parse(name, raw) for name, raw in values.items()}
        if not Account.objects.filter(pk=account_id).exists():
            raise RiskLimitInvalid(f"account {account_id} does not exist", field="account_id")
    except RiskLimitInvalid as exc:
        refuse(
            RiskLimitInvalid,
            exc.message,
            actor=actor,
            action="risk_limit.refused",
            data={
                **data,
                "field": exc.extra.get("field", ""),
            },
        )
    with transaction.atomic():
        row = RiskLimit.objects.select_for_update().filter(account_id=account_id).first()
        if row is None:
            row = RiskLimit(
                account_id=account_id,
                max_order_notional=settings.RISK_CEILING_MAX_ORDER_NOTIONAL,
                max_position_notional=settings.RISK_CEILING_MAX_POSITION_NOTIONAL,
            )
        old = {name: _str_or_none(getattr(row, name)) for name in parsed}
        for name, value in parsed.items():
            setattr(row, name, value)
        row.full_clean()
        row.save()
        audit_record(
            actor=actor,
            action="risk_limit.set",
            target=str(account_id),
            data={"old": old, "new": {name: _str_or_none(v) for name, v in parsed.items()}},
        )
    return row


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def risk_limits_for(*, account_id: int) -> RiskLimits:
    """The account's limits, never above the settings ceilings (empty fields: the ceiling)."""
    return risk_limits_from(RiskLimit.objects.filter(account_id=account_id).first())


def risk_limits_from(row: RiskLimit | None) -> RiskLimits:
    """``risk_limits_for`` of an already read RiskLimit row (None: the account has none).

    For callers that read the row together with other things in one query
    (``apps.trading.selectors.decision_inputs``); the same capping, the same result.
    """

    def capped(name: str, setting: str) -> Any:
        ceiling = getattr(settings, setting)
        value = getattr(row, name) if row is not None else None
        return ceiling if value is None else min(value, ceiling)

    floor = settings.RISK_MIN_DUPLICATE_WINDOW_SECONDS
    window = row.duplicate_window_seconds if row is not None else None
    return RiskLimits(
        max_order_notional=capped("max_order_notional", "RISK_CEILING_MAX_ORDER_NOTIONAL"),
        max_position_notional=capped("max_position_notional", "RISK_CEILING_MAX_POSITION_NOTIONAL"),
        max_gross_exposure=capped("max_gross_exposure", "RISK_CEILING_MAX_GROSS_EXPOSURE"),
        max_open_positions=capped("max_open_positions", "RISK_CEILING_MAX_OPEN_POSITIONS"),
        price_collar_pct=capped("price_collar_pct", "RISK_CEILING_PRICE_COLLAR_PCT"),
        max_orders_per_minute=capped("max_orders_per_minute", "RISK_CEILING_MAX_ORDERS_PER_MINUTE"),
        duplicate_window_seconds=floor if window is None else max(window, floor),
        # From the settings only: how fresh the market data must be, not a per-account policy.
        reference_max_age_seconds=settings.RISK_REFERENCE_PRICE_MAX_AGE_SECONDS,
    )
