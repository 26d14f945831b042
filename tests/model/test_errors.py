from __future__ import annotations

import pytest

from apps.model.errors import (
    DomainError,
    DuplicateFillError,
    InvalidOrderError,
    MarketDataError,
    OrderStateError,
    OverfillError,
)


def test_domain_error_keeps_message_and_extra() -> None:
    # Act
    error = DomainError("boom", order_id="o-1", qty="2")

    # Assert
    assert error.message == "boom"
    assert error.extra == {"order_id": "o-1", "qty": "2"}
    assert str(error) == "boom"
    assert error.code == "domain_error"


@pytest.mark.parametrize(
    ("cls", "parents", "code"),
    [
        (OrderStateError, (DomainError,), "order_state"),
        (DuplicateFillError, (OrderStateError, DomainError), "duplicate_fill"),
        (OverfillError, (OrderStateError, DomainError), "overfill"),
        (InvalidOrderError, (DomainError,), "invalid_order"),
        (MarketDataError, (DomainError,), "market_data"),
    ],
)
def test_subclasses_have_hierarchy_and_stable_codes(
    cls: type[DomainError], parents: tuple[type[Exception], ...], code: str
) -> None:
    error = cls("msg")

    assert all(isinstance(error, parent) for parent in parents)
    assert error.code == code
    assert cls.code == code


def test_market_data_error_carries_reason_source_line() -> None:
    error = MarketDataError("bad bar", reason="high_below_low", source="x.csv", line=7, raw="a")

    assert (error.reason, error.source, error.line) == ("high_below_low", "x.csv", 7)
    assert error.extra["raw"] == "a"
    assert error.extra["line"] == 7


def test_market_data_error_defaults() -> None:
    error = MarketDataError("missing file")

    assert (error.reason, error.source, error.line) == ("", "", None)
