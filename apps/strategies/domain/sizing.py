"""Position sizing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decimal import Decimal

    from apps.model.values import Instrument


def quantity_for_stake(stake: Decimal, price: Decimal, instrument: Instrument | None) -> Decimal:
    """Return the quantity bought with `stake` (quote currency) at `price`.

    quantity = stake / price in the current `decimal` context (28 significant
    digits by default), rounded down to the instrument's lot size only when the
    instrument defines one (`Instrument.round_quantity`).

    Raises
    ------
    ValueError
        If `stake` or `price` is not positive.
    """
    if stake <= 0:
        raise ValueError(f"stake must be positive, got {stake}")
    if price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    quantity = stake / price
    if instrument is not None and instrument.lot_size is not None:
        quantity = instrument.round_quantity(quantity)
    return quantity
