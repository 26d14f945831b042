"""The price collar against the market's reference price (issue 12, item 6).

decision_make compares the order's price with a reference the caller gives (the feed's
last trade and its time) or, without one, the instrument's last stored close; a stale or
missing reference denies the order with its own check ("reference_price").
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import DecisionLog
from apps.marketdata.services import bar_store
from apps.model.bars import Bar as BarValue
from apps.risk.models import RiskLimit
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.models import Order
from apps.trading.services.decisions import decision_make
from tests.trading.factories import T0, instrument, paper_account
from tests.trading.services.test_decision_make import PARAMS

pytestmark = pytest.mark.django_db


def collar(account, pct: str) -> None:  # noqa: ANN001
    RiskLimit.objects.filter(account=account).update(price_collar_pct=D(pct))


def stored_close(symbol: str, close: str, *, opened, timeframe: str = "1m") -> None:  # noqa: ANN001
    price = D(close)
    bar_store(
        bar=BarValue(symbol, opened, price, price, price, price, D(1)),
        timeframe=timeframe,
        instrument_id=instrument(symbol).pk,
    )


def decide(account, price: str, **reference):  # noqa: ANN001, ANN003, ANN201
    return decision_make(
        account=account,
        signal=Signal(
            instrument="BTC-USD", ts=T0, action=SignalAction.ENTER_LONG, price=D(price), inputs={}
        ),
        strategy="sma_cross",
        strategy_params=PARAMS,
        stake=D("100"),
        **reference,
    )


def check(outcome, name: str) -> dict:  # noqa: ANN001
    decision = DecisionLog.objects.get(pk=outcome.decision.pk)
    return next(c for c in decision.checks if c["name"] == name)


def test_decision_when_signal_20_and_stored_close_10_then_denied_by_the_collar() -> None:
    """The measured bug: the signal's own price was its reference, so deviation was 0."""
    account = paper_account()
    collar(account, "0.01")
    stored_close("BTC-USD", "10", opened=T0 - timedelta(minutes=1))  # closes at T0

    outcome = decide(account, "20")

    assert outcome.order.status == "denied"
    assert outcome.decision.failed_checks == ["price_collar"]
    assert outcome.order.status_reason.startswith(
        "price_collar: 20 is 1 from last 10.000000000000 > 0.01"
    )
    values = check(outcome, "price_collar")["values"]
    assert (D(values["price"]), D(values["last_price"]), D(values["deviation"])) == (
        D(20),
        D(10),
        D(1),
    )
    reference = check(outcome, "reference_price")
    assert reference["passed"]
    assert D(reference["values"]["reference_price"]) == D(10)
    assert reference["values"]["reference_ts"] == T0.isoformat()
    assert D(reference["values"]["age_seconds"]) == 0


def test_decision_when_given_reference_within_the_collar_then_approved_and_recorded() -> None:
    account = paper_account()
    collar(account, "0.01")
    stored_close("BTC-USD", "10", opened=T0 - timedelta(minutes=1))  # ignored: a reference is given

    outcome = decide(
        account, "20.1", reference_price=D("20"), reference_ts=T0 - timedelta(seconds=30)
    )

    assert outcome.order.status == "initialized"
    assert outcome.decision.check_result == "passed"
    reference = check(outcome, "reference_price")
    assert reference["values"] == {
        "reference_price": "20",
        "reference_ts": (T0 - timedelta(seconds=30)).isoformat(),
        "age_seconds": "30.0",
        "max_age_seconds": "300",
    }
    assert reference["detail"] == "30.0 s old <= 300 s"
    assert D(check(outcome, "price_collar")["values"]["deviation"]) == D("0.005")


def test_decision_when_given_reference_outside_the_collar_then_denied() -> None:
    account = paper_account()
    collar(account, "0.01")
    instrument()

    outcome = decide(account, "20", reference_price=D("19"), reference_ts=T0)

    assert outcome.order.status == "denied"
    assert outcome.decision.failed_checks == ["price_collar"]


def test_decision_when_stored_close_fresh_then_approved() -> None:
    account = paper_account()
    collar(account, "0.01")
    stored_close("BTC-USD", "19.9", opened=T0 - timedelta(minutes=3))
    stored_close("BTC-USD", "20", opened=T0 - timedelta(minutes=2))  # the last: closes T0 - 1m

    outcome = decide(account, "20.1")

    assert outcome.order.status == "initialized"
    reference = check(outcome, "reference_price")
    assert (reference["values"]["reference_price"], reference["values"]["age_seconds"]) == (
        "20.000000000000",
        "60.0",
    )


def test_decision_when_reference_stale_then_denied_with_its_own_reason(settings) -> None:
    settings.RISK_REFERENCE_PRICE_MAX_AGE_SECONDS = 120
    account = paper_account()
    collar(account, "0.01")
    stored_close("BTC-USD", "20", opened=T0 - timedelta(minutes=10))  # closed 9 minutes ago

    outcome = decide(account, "20")

    assert outcome.order.status == "denied"
    assert outcome.decision.failed_checks == ["reference_price"]
    assert outcome.order.status_reason == (
        "reference_price: reference price 20.000000000000 is 540.0 s old > 120 s"
    )
    values = check(outcome, "reference_price")["values"]
    assert (values["age_seconds"], values["max_age_seconds"]) == ("540.0", "120")


def test_decision_when_given_reference_stale_then_denied() -> None:
    account = paper_account()
    instrument()

    outcome = decide(
        account, "20", reference_price=D("20"), reference_ts=T0 - timedelta(seconds=301)
    )

    assert outcome.order.status == "denied"
    assert outcome.decision.failed_checks == ["reference_price"]


def test_decision_when_no_reference_at_all_then_denied_with_its_own_reason() -> None:
    account = paper_account()
    instrument()  # no bar stored, no reference given

    outcome = decide(account, "20")

    assert outcome.order.status == "denied"
    assert outcome.decision.failed_checks == ["reference_price", "price_collar"]
    assert outcome.order.status_reason.startswith(
        "reference_price: no reference price: no last trade from the feed and no stored close"
    )
    values = check(outcome, "reference_price")["values"]
    assert values["reference_price"] == values["age_seconds"] == "none"


def test_decision_when_timeframe_given_then_the_close_of_that_timeframe_is_the_reference() -> None:
    account = paper_account()
    collar(account, "0.01")
    stored_close("BTC-USD", "20", opened=T0 - timedelta(minutes=1), timeframe="1m")
    stored_close("BTC-USD", "10", opened=T0 - timedelta(hours=1), timeframe="1h")  # closes at T0

    on_hourly = decide(account, "20", timeframe="1h")
    Order.objects.update(status="denied")  # nothing working: decide again
    on_any = decide(account, "20")

    assert on_hourly.decision.failed_checks == ["price_collar"]  # 20 vs the hourly close 10
    assert check(on_hourly, "reference_price")["values"]["reference_price"] == "10.000000000000"
    # Without a timeframe: the bar that closed last; both close at T0, either is fresh.
    assert check(on_any, "reference_price")["passed"]


def test_decision_when_timeframes_differ_then_the_one_that_closed_last_is_the_reference() -> None:
    account = paper_account()
    collar(account, "0.01")
    stored_close("BTC-USD", "10", opened=T0 - timedelta(days=2), timeframe="1d")  # closed T0-1d
    stored_close("BTC-USD", "20", opened=T0 - timedelta(minutes=5), timeframe="5m")  # closes T0

    outcome = decide(account, "20")

    assert outcome.order.status == "initialized"
    values = check(outcome, "reference_price")["values"]
    assert (values["reference_price"], values["age_seconds"]) == ("20.000000000000", "0.0")


def test_decision_when_reference_price_without_aware_time_then_value_error_and_nothing_recorded() -> (
    None
):
    account = paper_account()
    instrument()

    with pytest.raises(ValueError, match="reference_ts"):
        decide(account, "20", reference_price=D("20"))
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(account, "20", reference_price=D("20"), reference_ts=T0.replace(tzinfo=None))

    assert not DecisionLog.objects.exists()
    assert not Order.objects.exists()


def test_decision_when_stored_close_is_the_reference_then_still_one_read() -> None:
    account = paper_account()
    stored_close("BTC-USD", "20", opened=T0 - timedelta(minutes=1))
    decide(account, "20")  # warm: the statements are built once
    Order.objects.update(status="denied")

    with CaptureQueriesContext(connection) as ctx:
        outcome = decide(account, "20")

    assert outcome.order.status == "initialized"
    sql = [q["sql"].strip() for q in ctx.captured_queries]
    sql = [s for s in sql if s.startswith(("SELECT", "INSERT", "UPDATE", "DELETE"))]
    # decision inputs with the last close and the risk context; the order; the decision log
    assert [s.split()[0] for s in sql] == ["SELECT", "INSERT", "INSERT"]
