"""The ML strategy through restarts: its feature window and holding state come back from the
stored bars (warm-up logs no prediction), so decisions equal an uninterrupted run."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from apps.engine.runner import EnginePlan
from apps.ml import services
from apps.ml.models import Prediction
from tests.engine.restarts import decisions, renamed, run
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db(transaction=True)


def ml_plan(account, instrument: str) -> EnginePlan:
    return EnginePlan(
        key=f"ml-{instrument}",
        account=account,
        instrument=instrument,
        timeframe="1m",
        strategy_name="ml",
        strategy_params={"threshold": "0.2"},
        stake=Decimal("500"),
        strategy_factory=lambda: services.ml_strategy_live(threshold=0.2),
    )


def test_ml_restarts_when_at_random_bars_then_same_decisions_and_predictions_once(
    active, ml_bars, eager_celery
) -> None:
    bars = ml_bars[-1200:]
    steady = paper_account("100000", name="steady", max_order="2000")
    restarted = paper_account("100000", name="restarted", max_order="2000")
    # Restarts inside the 240-bar feature warm-up too, and after it.
    points = sorted(random.Random(7).sample(range(100, len(bars)), 6))

    run(ml_plan(steady, "AAA-USDT"), renamed(bars, "AAA-USDT"))
    run(ml_plan(restarted, "BBB-USDT"), renamed(bars, "BBB-USDT"), points)

    expected = decisions(steady)
    assert any(d[2] == "buy" for d in expected), "the ML plan must trade on these bars"
    assert decisions(restarted) == expected
    # One prediction per bar with a full feature window, in both runs: none from warm-ups.
    for symbol in ("AAA-USDT", "BBB-USDT"):
        ts = list(Prediction.objects.filter(instrument=symbol).values_list("bar_ts", flat=True))
        assert len(ts) == len(set(ts))
    assert Prediction.objects.filter(instrument="BBB-USDT").count() == (
        Prediction.objects.filter(instrument="AAA-USDT").count()
    )
