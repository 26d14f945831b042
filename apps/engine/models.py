"""Trading plans: what the engine trades, per account, as data (not settings).

A plan is one series traded by one strategy for one account: venue + instrument +
timeframe + strategy (with its parameters) + stake per entry. ``TradingPlan.clean``
holds every rule, so the services, the admin form and the panel form all refuse the
same bad input with an error on the field that was wrong.

Venue rule: the venue is where the plan's bars come from and where its orders go. An
account at a real broker (``kraken``, ``ibkr``) trades only at that broker; a ``paper``
account is the simulator and may trade against any venue's data (``paper`` = replay of
recorded data in dev; ``kraken`` / ``ibkr`` = that broker's live feed, simulated fills,
as staging does). Instruments: Kraken trades crypto only, the IBKR adapter equities only;
the paper simulator both.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from apps.accounts.models import Account, Broker
from apps.core.fields import MoneyField
from apps.engine.feeds.base import TIMEFRAMES
from apps.marketdata.models import AssetClass, Instrument
from apps.strategies.domain.registry import STRATEGIES, build_strategy

# The asset classes each venue trades (apps.trading.venues: Kraken spot crypto, IBKR equities).
VENUE_ASSET_CLASSES: dict[str, frozenset[str]] = {
    Broker.PAPER: frozenset({AssetClass.CRYPTO, AssetClass.EQUITY}),
    Broker.KRAKEN: frozenset({AssetClass.CRYPTO}),
    Broker.IBKR: frozenset({AssetClass.EQUITY}),
}

# "ml" without a "model" parameter runs the ACTIVE model (apps.ml.services.ml_strategy_live,
# predictions logged), as ENGINE_STRATEGY=ml does; its only parameter is an optional threshold.
ML_STRATEGY = "ml"
ML_LIVE_PARAMS = frozenset({"threshold"})


def venue_allowed(*, account_broker: str, venue: str) -> bool:
    """A real-broker account trades only at its broker; the paper simulator anywhere."""
    return account_broker == Broker.PAPER or venue == account_broker


def params_normalize(params: object) -> dict[str, str]:
    """Strategy parameters as ``{name: text}`` (how ``build_strategy`` takes them).

    Numbers are accepted and kept as their text (``10`` -> ``"10"``); anything else
    (a list, null, a nested object, true/false) is refused with a ValueError.
    """
    if params is None or params == "":
        return {}
    if not isinstance(params, Mapping):
        raise ValueError(
            f'params must be a JSON object of name -> value, like {{"fast": "10"}}; got {params!r}'
        )
    out: dict[str, str] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"parameter name {key!r} must be a non-empty string")
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise ValueError(f"parameter {key!r} must be a string or a number, got {value!r}")
        out[key.strip()] = str(value).strip()
    return out


def strategy_check(name: str, params: Mapping[str, str]) -> None:
    """Build the strategy once to prove name and params are good; ValueError says why."""
    if name not in STRATEGIES:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown strategy {name!r}; choose one of: {known}")
    if name == ML_STRATEGY and "model" not in params:
        unknown = sorted(set(params) - ML_LIVE_PARAMS)
        if unknown:
            raise ValueError(
                f"unknown parameter {unknown[0]!r} for strategy 'ml' on the active model; "
                "accepted: threshold (or give model=<file>.joblib and threshold)"
            )
        if "threshold" in params and params["threshold"] != "default":
            try:
                value = float(params["threshold"])
            except ValueError:
                value = -1.0
            if not 0.0 < value < 1.0:
                raise ValueError(
                    f"threshold must be a probability in (0, 1) like 0.5, "
                    f"got {params['threshold']!r}"
                )
        return
    build_strategy(name, params)


class TradingPlan(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="trading_plans")
    venue = models.CharField(
        max_length=16,
        choices=Broker.choices,
        help_text="where bars come from and orders go; a paper account may use any venue's data",
    )
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="trading_plans"
    )
    timeframe = models.CharField(max_length=8, choices=[(t, t) for t in TIMEFRAMES])
    strategy = models.CharField(
        max_length=64, help_text="a registered strategy: sma_cross, ml (the active model), ..."
    )
    params = models.JSONField(
        default=dict, blank=True, help_text='strategy parameters, e.g. {"fast": "10", "slow": "30"}'
    )
    stake = MoneyField(help_text="quote currency spent per entry (> 0)")
    active = models.BooleanField(default=True, help_text="the engine trades active plans only")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ("account_id", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "venue", "instrument", "timeframe", "strategy"],
                name="engine_plan_one_per_series_strategy",
                violation_error_message=(
                    "this account already has a plan for this venue, instrument, timeframe "
                    "and strategy: edit that plan instead"
                ),
            ),
            models.CheckConstraint(
                condition=models.Q(stake__gt=0),
                name="engine_plan_stake_positive",
                violation_error_message="stake must be greater than 0",
            ),
        ]

    def __str__(self) -> str:
        symbol = self.instrument.symbol if self.instrument_id else "?"
        return f"{self.strategy} {symbol} {self.timeframe} @{self.venue}"

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        try:
            self.params = params_normalize(self.params)
        except ValueError as exc:
            errors["params"] = str(exc)
        account = self._related("account")
        instrument = self._related("instrument")
        if (
            account is not None
            and self.venue in Broker.values
            and not venue_allowed(account_broker=account.broker, venue=self.venue)
        ):
            errors["venue"] = (
                f"account {account.name} trades at {account.broker}: its plans must use "
                f"venue {account.broker} (only a paper account may use another venue's data)"
            )
        if instrument is not None:
            if not instrument.active:
                errors["instrument"] = f"instrument {instrument.symbol} is not active"
            elif self.venue in VENUE_ASSET_CLASSES and (
                instrument.asset_class not in VENUE_ASSET_CLASSES[self.venue]
            ):
                errors["instrument"] = (
                    f"{instrument.symbol} is {instrument.asset_class}; venue {self.venue} "
                    f"trades {', '.join(sorted(VENUE_ASSET_CLASSES[self.venue]))} only"
                )
        # A stake that is not a number at all is reported by clean_fields already.
        if isinstance(self.stake, Decimal) and self.stake.is_finite() and self.stake <= 0:
            errors["stake"] = f"stake must be greater than 0, got {self.stake}"
        if self.strategy and "params" not in errors:
            try:
                strategy_check(self.strategy, self.params)
            except ValueError as exc:
                key = "strategy" if self.strategy not in STRATEGIES else "params"
                errors[key] = str(exc)
        if errors:
            raise ValidationError(errors)

    def _related(self, name: str) -> Any:
        """The FK's object, or None when unset or missing (full_clean reports that itself)."""
        if getattr(self, f"{name}_id") is None:
            return None
        try:
            return getattr(self, name)
        except models.ObjectDoesNotExist:
            return None
