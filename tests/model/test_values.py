from __future__ import annotations

from decimal import Decimal

import pytest

from apps.model.values import AssetClass, Instrument, OrderType, Side


def test_side_sign_and_opposite() -> None:
    assert Side.BUY.sign == 1
    assert Side.SELL.sign == -1
    assert Side.BUY.opposite is Side.SELL
    assert Side.SELL.opposite is Side.BUY


def test_enums_are_str_values() -> None:
    assert Side("buy") is Side.BUY
    assert str(Side.SELL) == "sell"
    assert OrderType.LIMIT == "limit"
    assert AssetClass.EQUITY == "equity"


def test_from_symbol_splits_base_and_quote() -> None:
    instrument = Instrument.from_symbol("ETH-BTC")

    assert instrument == Instrument("ETH-BTC", "ETH", "BTC")
    assert instrument.asset_class is AssetClass.CRYPTO
    assert instrument.tick_size is None
    assert instrument.lot_size is None


def test_from_symbol_accepts_slash_and_passes_options() -> None:
    instrument = Instrument.from_symbol(
        "AAPL/USD", asset_class=AssetClass.EQUITY, lot_size=Decimal(1)
    )

    assert (instrument.base, instrument.quote) == ("AAPL", "USD")
    assert instrument.symbol == "AAPL/USD"
    assert instrument.lot_size == Decimal(1)


@pytest.mark.parametrize("symbol", ["ETHBTC", "ETH-", "-BTC", "A-B-C", ""])
def test_from_symbol_when_malformed_then_raises(symbol: str) -> None:
    with pytest.raises(ValueError, match="BASE-QUOTE"):
        Instrument.from_symbol(symbol)


@pytest.mark.parametrize(
    ("lot", "quantity", "expected"),
    [
        ("0.01", "1.23456", "1.23"),
        ("0.01", "1.23", "1.23"),
        ("0.01", "0.009", "0"),
        ("5", "12", "10"),
        ("0.5", "-1.7", "-1.5"),  # toward zero
    ],
)
def test_round_quantity_rounds_down_to_lot(lot: str, quantity: str, expected: str) -> None:
    instrument = Instrument("X-Y", "X", "Y", lot_size=Decimal(lot))

    assert instrument.round_quantity(Decimal(quantity)) == Decimal(expected)


@pytest.mark.parametrize(
    ("tick", "price", "expected"),
    [
        ("0.01", "100.004", "100.00"),
        ("0.01", "100.005", "100.01"),
        ("0.01", "100.006", "100.01"),
        ("0.5", "10.2", "10.0"),
        ("0.5", "10.3", "10.5"),
        ("0.00000001", "0.123456789", "0.12345679"),
    ],
)
def test_round_price_rounds_to_nearest_tick(tick: str, price: str, expected: str) -> None:
    instrument = Instrument("X-Y", "X", "Y", tick_size=Decimal(tick))

    assert instrument.round_price(Decimal(price)) == Decimal(expected)


def test_rounding_without_increments_is_identity() -> None:
    instrument = Instrument.from_symbol("ETH-BTC")
    value = Decimal("1.23456789123")

    assert instrument.round_quantity(value) is value
    assert instrument.round_price(value) is value


@pytest.mark.parametrize("bad", [Decimal(0), Decimal("-0.1"), Decimal("NaN")])
def test_instrument_when_increment_not_positive_then_raises(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="lot_size"):
        Instrument("X-Y", "X", "Y", lot_size=bad)
    with pytest.raises(ValueError, match="tick_size"):
        Instrument("X-Y", "X", "Y", tick_size=bad)


def test_instrument_is_frozen() -> None:
    instrument = Instrument.from_symbol("ETH-BTC")

    with pytest.raises(AttributeError):
        instrument.symbol = "X"  # type: ignore[misc]
