"""The strategy interface.

A strategy sees one closed bar at a time and answers with one `Signal` per bar
(`HOLD` when there is nothing to do). It only decides; turning a signal into an
order (sizing, pre-trade checks, the broker) is the caller's job, the same in the
live engine and in the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from datetime import datetime
    from decimal import Decimal

    from apps.model.bars import Bar


class SignalAction(StrEnum):
    """What a strategy wants at a bar's close."""

    ENTER_LONG = "enter_long"
    EXIT_LONG = "exit_long"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class Signal:
    """A decision taken at a bar's close from data up to and including that bar.

    `price` is the bar's close (the decision price); `inputs` holds the values the
    decision was based on, as strings, for the audit trail.
    """

    instrument: str
    ts: datetime
    action: SignalAction
    price: Decimal
    inputs: dict[str, str] = field(default_factory=dict)


class Strategy(Protocol):
    """What the live engine and the backtest call.

    `decide(bar)` is the decision itself and allocates nothing when the answer is
    `HOLD`; `on_bar(bar)` is `decide` plus the `Signal` record. Callers that need
    speed (the backtest) call `decide` and build the `Signal` only for non-HOLD
    answers via `signal_for`; both paths run the same decision code.
    """

    name: str
    params: dict[str, int]

    def decide(self, bar: Bar) -> SignalAction:
        """Update the strategy's state with `bar` and return its action."""
        ...

    def on_bar(self, bar: Bar) -> Signal:
        """Update the strategy's state with `bar` and return the full signal."""
        ...

    def signal_for(self, bar: Bar, action: SignalAction) -> Signal:
        """Build the `Signal` for the action `decide(bar)` just returned."""
        ...
