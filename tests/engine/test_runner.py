"""The engine loop in-process: real bars -> strategy -> checks -> order -> paper fills -> P&L.

Celery runs eagerly here (the real-worker path is in tests/integration); commits are
real (transactional_db) so on_commit sends happen as in production.
"""

from __future__ import annotations

import itertools
from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D
from pathlib import Path

import pytest

from apps.accounts.models import Account
from apps.audit.models import DecisionLog
from apps.engine.runner import Engine
from apps.marketdata.domain.csvfile import read_bars
from apps.marketdata.models import Bar, FeedStatus
from apps.strategies.domain.registry import build_strategy
from apps.trading.models import EquitySnapshot, Fill, Order, Position
from tests.trading.factories import paper_account

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "BTC-USD_1m_coinbase.csv"
PARAMS = {"fast": "10", "slow": "30"}


def engine_for(account: Account) -> Engine:
    return Engine.for_account(
        account=account,
        strategy_factory=lambda: build_strategy("sma_cross", PARAMS),
        strategy_name="sma_cross",
        strategy_params=PARAMS,
        stake=D("1000"),
    )


@pytest.mark.django_db(transaction=True)
def test_engine_when_replaying_real_bars_then_orders_fill_and_cash_reconciles(eager_celery) -> None:
    account = paper_account("100000")
    engine = engine_for(account)

    count = engine.run(itertools.islice(read_bars(SAMPLE), 600))

    assert count == 600
    assert Bar.objects.count() == 600
    assert FeedStatus.objects.get(feed="replay:BTC-USD:1m").bars_accepted == 600
    trades = DecisionLog.objects.filter(action__in=["buy", "sell"])
    assert trades.count() >= 2
    fills = list(Fill.objects.all())
    assert fills, "sma_cross on 600 real bars must trade"
    # every order the decisions named exists and was sent exactly through the state machine
    for decision in trades:
        (coid,) = decision.order_ids
        assert Order.objects.get(client_order_id=coid).status in {"filled", "accepted"}
    # cash = start - buys (notional + fee) + sells (notional - fee), each fill's cash
    # rounded half-even to the database's 12 places once (the documented rule)
    expected = D("100000")
    for f in sorted(fills, key=lambda f: f.id):
        notional = f.quantity * f.price
        change = -notional - f.fee if f.side == "buy" else notional - f.fee
        expected = (expected + change).quantize(D("1e-12"), rounding=ROUND_HALF_EVEN)
    account.refresh_from_db()
    assert account.cash == expected
    assert account.fees_paid == sum(f.fee for f in fills)
    # positions equal the net of the fills
    net = sum(f.quantity if f.side == "buy" else -f.quantity for f in fills)
    assert Position.objects.get(account=account).quantity == net
    # one equity snapshot per minute of market time
    assert EquitySnapshot.objects.filter(account=account).count() == 600


@pytest.mark.django_db(transaction=True)
def test_engine_when_fill_bar_replayed_then_fill_counted_once(eager_celery) -> None:
    account = paper_account("100000")
    engine = engine_for(account)
    bars = list(itertools.islice(read_bars(SAMPLE), 600))
    engine.run(bars)
    first_fill = Fill.objects.order_by("ts").first()
    assert first_fill is not None
    fills_before = Fill.objects.count()
    cash_before = Account.objects.get(pk=account.pk).cash

    # The bar that produced the first fill arrives again (a restart replaying it).
    replayed = next(b for b in bars if b.ts == first_fill.ts)
    for fill in engine.venue.match(replayed):
        from apps.trading.services.fills import fill_apply

        assert fill_apply(fill=fill) is None

    assert Fill.objects.count() == fills_before
    assert Account.objects.get(pk=account.pk).cash == cash_before
