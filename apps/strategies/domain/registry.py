"""Strategies by name, built from string parameters (command line, settings)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from apps.strategies.domain.sma_cross import SmaCross

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from apps.strategies.domain.base import Strategy

STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "sma_cross": SmaCross,
}


def register(name: str, factory: Callable[..., Strategy]) -> None:
    """Add a strategy built elsewhere (apps above this one register theirs at start-up:
    ``apps.ml`` registers ``ml`` in its ``AppConfig.ready``). Registering the same factory
    twice is harmless; another factory under a taken name is refused."""
    known = STRATEGIES.get(name)
    if known is not None and known is not factory:
        raise ValueError(f"strategy {name!r} is already registered")
    STRATEGIES[name] = factory


def strategy_params(name: str) -> tuple[str, ...]:
    """Return the parameter names the strategy `name` accepts.

    Raises
    ------
    ValueError
        If no strategy is registered under `name`.
    """
    try:
        factory = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown strategy {name!r}; choose one of: {known}") from None
    return tuple(inspect.signature(factory).parameters)


def _convert(name: str, key: str, raw: str, annotation: Any) -> object:
    """Convert one string parameter; integers are the only kind used so far."""
    if annotation in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(
                f"parameter {key!r} of strategy {name!r} must be an integer, got {raw!r}"
            ) from None
    return raw


def build_strategy(name: str, params: Mapping[str, str]) -> Strategy:
    """Build the strategy `name` from string parameters.

    Every parameter of the strategy is required; values are converted according
    to the strategy's annotations.

    Raises
    ------
    ValueError
        On an unknown strategy, an unknown or missing parameter, or a bad value;
        the message says which and what is accepted.
    """
    accepted = strategy_params(name)
    factory = STRATEGIES[name]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r} for strategy {name!r}; "
            f"accepted: {', '.join(accepted)}"
        )
    missing = [key for key in accepted if key not in params]
    if missing:
        raise ValueError(
            f"strategy {name!r} needs parameter {missing[0]!r} "
            f"(give {', '.join(f'{k}=...' for k in accepted)})"
        )
    signature = inspect.signature(factory)
    kwargs = {
        key: _convert(name, key, params[key], signature.parameters[key].annotation)
        for key in accepted
    }
    return factory(**kwargs)
