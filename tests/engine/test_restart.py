"""Restart is seamless: restarts at random bars, and a crash inside a bar, change no decision.

Two accounts trade the same recorded bars under two instrument names (so they share no
state): one engine runs without interruption, the other is replaced by a fresh Engine at
random bars, whose strategy is warmed up from the stored bars only. The decision logs
must be equal, bar for bar.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from apps.engine import runner
from apps.engine.runner import Engine
from apps.marketdata.domain.csvfile import read_bars
from apps.marketdata.models import Bar as BarRow
from apps.trading.models import Fill
from tests.engine.restarts import decisions, renamed, run, sma_plan
from tests.trading.factories import paper_account

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "BTC-USD_1m_coinbase.csv"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def sample_bars():
    return list(itertools.islice(read_bars(SAMPLE), 500))


@pytest.mark.parametrize("seed", [1, 2])
def test_restarts_when_at_random_bars_then_decisions_equal_an_uninterrupted_run(
    eager_celery, sample_bars, seed
) -> None:
    steady = paper_account("100000", name="steady", max_order="2000")
    restarted = paper_account("100000", name="restarted", max_order="2000")
    rng = random.Random(seed)
    points = rng.sample(range(1, len(sample_bars)), 6)

    assert run(sma_plan(steady, "AAA-USD"), renamed(sample_bars, "AAA-USD")) == 1
    assert run(sma_plan(restarted, "BBB-USD"), renamed(sample_bars, "BBB-USD"), points) == 7

    expected = decisions(steady)
    assert len([d for d in expected if d[2] in ("buy", "sell")]) >= 4  # it really traded
    assert decisions(restarted) == expected
    # every bar stored once, and the books agree
    for symbol in ("AAA-USD", "BBB-USD"):
        assert BarRow.objects.filter(instrument__symbol=symbol).count() == len(sample_bars)
    assert (
        Fill.objects.filter(account=restarted).count()
        == Fill.objects.filter(account=steady).count()
    )
    steady.refresh_from_db()
    restarted.refresh_from_db()
    assert restarted.cash == steady.cash


def test_crash_when_inside_a_bar_after_its_decision_then_neither_kept_and_redone_once(
    eager_celery, sample_bars, monkeypatch
) -> None:
    steady = paper_account("100000", name="steady", max_order="2000")
    crashed = paper_account("100000", name="crashed", max_order="2000")
    run(sma_plan(steady, "AAA-USD"), renamed(sample_bars, "AAA-USD"))
    expected = decisions(steady)
    second_trade_ts = [d[0] for d in expected if d[2] in ("buy", "sell")][1]

    # The process dies while storing the bar its second trade was decided on.
    real_store = runner.bar_store

    def dying_store(*, bar, timeframe, instrument_id):
        if bar.ts == second_trade_ts:
            raise SystemExit("killed")
        real_store(bar=bar, timeframe=timeframe, instrument_id=instrument_id)

    bars = renamed(sample_bars, "BBB-USD")
    plan = sma_plan(crashed, "BBB-USD")
    monkeypatch.setattr(runner, "bar_store", dying_store)
    with pytest.raises(SystemExit):
        Engine(plans=[plan]).run(bars)
    # Nothing of that bar survived: not its decision, not the bar.
    assert [d for d in decisions(crashed) if d[0] >= second_trade_ts] == []
    assert not BarRow.objects.filter(instrument__symbol="BBB-USD", ts=second_trade_ts).exists()

    monkeypatch.setattr(runner, "bar_store", real_store)
    Engine(plans=[plan]).run(bars)
    assert decisions(crashed) == expected


def test_engine_when_bar_already_stored_then_skipped_not_decided_again(
    eager_celery, sample_bars
) -> None:
    account = paper_account("100000", max_order="2000")
    plan = sma_plan(account, "AAA-USD")
    bars = renamed(sample_bars[:150], "AAA-USD")
    engine = Engine(plans=[plan])
    assert engine.run(bars) == 150
    before = decisions(account)

    again = Engine(plans=[plan])
    assert again.run(bars) == 0
    assert again.bars_skipped == 150
    assert decisions(account) == before
