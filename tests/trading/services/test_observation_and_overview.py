"""OBSERVATION's hypothetical book (filled at the next open, marked to market), the risk
overview (exposures, VaR, correlations) and the Prometheus gauges."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from prometheus_client import REGISTRY, generate_latest

from apps.engine.runner import Engine
from apps.marketdata.services import bar_store
from apps.model.bars import Bar
from apps.risk.domain.modes import SystemMode
from apps.risk.models import HypotheticalTrade
from apps.risk.services.modes import system_mode_set
from apps.risk.services.monitoring import equity_observe
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.models import Order
from apps.trading.selectors import hypothetical_pnl, risk_overview
from apps.trading.services.decisions import decision_make
from tests.trading.factories import T0, instrument, paper_account
from tests.trading.services.test_kill_switch import hold

pytestmark = pytest.mark.django_db


class Script:
    """Enter on the first bar, exit on the third, hold otherwise."""

    name = "script"
    params: dict[str, int] = {}

    def __init__(self) -> None:
        self.n = 0

    def warm(self, bar: Bar) -> None:
        """A script counts the bars it is run on, not the stored ones before them."""

    def on_bar(self, bar: Bar) -> Signal:
        self.n += 1
        action = {1: SignalAction.ENTER_LONG, 3: SignalAction.EXIT_LONG}.get(
            self.n, SignalAction.HOLD
        )
        return Signal(
            instrument=bar.instrument, ts=bar.ts, action=action, price=bar.close, inputs={}
        )


def bar(i: int, open_: str, close: str) -> Bar:
    o, c = D(open_), D(close)
    return Bar("BTC-USD", T0 + timedelta(minutes=i), o, max(o, c), min(o, c), c, D(1000))


def bar_before() -> None:
    """The bar stored before the replay starts: the reference price of the first decision
    (the engine decides on a bar before storing it)."""
    bar_store(bar=bar(-1, "99", "99"), timeframe="1m", instrument_id=instrument().pk)


def test_observation_decisions_build_a_hypothetical_book_with_pnl() -> None:
    # Arrange
    account = paper_account()
    bar_before()
    system_mode_set(mode=SystemMode.OBSERVATION, actor="t", source="cli", reason="watch")
    engine = Engine.for_account(
        account=account,
        strategy_factory=Script,
        strategy_name="script",
        strategy_params={},
        stake=D(1000),
    )

    # Act: enter at 100 (fills next open 101), exit at 110 (fills next open 111), then 4th bar.
    for i, (o, c) in enumerate([("99", "100"), ("101", "105"), ("108", "110"), ("111", "112")]):
        engine.on_bar(bar(i, o, c))

    # Assert: nothing sent, two hypothetical trades filled at the next opens.
    assert not Order.objects.exists()
    trades = list(HypotheticalTrade.objects.order_by("id"))
    assert [(t.side, t.quantity, t.fill_price) for t in trades] == [
        ("buy", D(10), D(101)),
        ("sell", D(10), D(111)),
    ]
    pnl = hypothetical_pnl("paper")
    fees = D(10) * D(101) * D("0.001") + D(10) * D(111) * D("0.001")
    assert pnl["realized_pnl"] == D(100)
    assert pnl["fees"] == fees
    assert pnl["total_pnl"] == D(100) - fees
    assert pnl["pending"] == 0


def test_hypothetical_open_position_is_marked_at_the_last_bar() -> None:
    account = paper_account()
    instrument()
    system_mode_set(mode=SystemMode.OBSERVATION, actor="t", source="cli", reason="watch")
    decision_make(
        account=account,
        signal=Signal("BTC-USD", T0, SignalAction.ENTER_LONG, D(100), {}),
        strategy="x",
        strategy_params={},
        stake=D(1000),
        reference_price=D(100),
        reference_ts=T0,
    )
    engine = Engine.for_account(
        account=account,
        strategy_factory=lambda: Script(),
        strategy_name="s",
        strategy_params={},
        stake=D(0),
    )
    engine._strategies["BTC-USD"] = type(
        "H",
        (),
        {"on_bar": lambda self, b: Signal(b.instrument, b.ts, SignalAction.HOLD, b.close, {})},
    )()
    engine.on_bar(bar(1, "102", "107"))

    pnl = hypothetical_pnl("paper")
    assert pnl["positions"][0]["quantity"] == D(10)
    assert pnl["unrealized_pnl"] == D(10) * (D(107) - D(102))


def test_risk_overview_exposures_var_correlation_and_metrics() -> None:
    # Arrange: a long and a short, 30 days of stored daily closes for each.
    account = paper_account("100000")
    hold(account, "BTC-USD", "1", "100", mark="120")
    hold(account, "ETH-USD", "-2", "50", mark="40")
    for d in range(30):
        for symbol, base in (("BTC-USD", 100), ("ETH-USD", 50)):
            price = D(base) + D(d % 7) - D(d % 3) * (1 if symbol == "BTC-USD" else -1)
            bar_store(
                bar=Bar(symbol, T0 + timedelta(days=d), price, price, price, price, D(1)),
                timeframe="1d",
                instrument_id=instrument(symbol).pk,
            )
    equity_observe(account_id=account.pk, equity=D(100000), ts=T0, open_positions=2)

    # Act
    overview = risk_overview("paper")

    # Assert
    exposures = {e["instrument"]: e for e in overview["exposures"]}
    assert exposures["BTC-USD"]["notional"] == "120.000000000000"
    assert exposures["BTC-USD"]["pct_of_equity"] == "0.00120000"
    assert D(exposures["ETH-USD"]["notional"]) == D(-80)
    assert D(overview["gross_exposure"]) == D(200)
    assert D(overview["exposure_by_asset_class"]["crypto"]) == D(200)
    assert overview["var"]["window_days"] == 250
    assert D(overview["var"]["99"]) >= D(overview["var"]["95"]) > 0
    assert overview["correlation"]["instruments"] == ["BTC-USD", "ETH-USD"]
    assert overview["limits"]["max_order_notional"] == "5000.000000000000"
    assert set(overview["ceilings"]) >= {"price_collar_pct", "duplicate_window_seconds"}

    text = generate_latest(REGISTRY).decode()
    assert 'trading_system_mode{mode="normal"} 1.0' in text
    assert 'trading_system_mode{mode="kill"} 0.0' in text
    assert 'trading_equity{account="paper"} 100000.0' in text
    assert 'trading_open_positions{account="paper"} 2.0' in text
    assert 'trading_drawdown_pct{account="paper"}' in text
    assert 'trading_daily_pnl_pct{account="paper"} 0.0' in text
    assert 'trading_var_99{account="paper"}' in text


def test_risk_page_when_observation_traded_then_hypothetical_pnl_shown(client, staff_user) -> None:
    from django.urls import reverse

    from tests.conftest import otp_login

    # Arrange: the same observation round trip as above (+100 before fees)
    account = paper_account()
    bar_before()
    system_mode_set(mode=SystemMode.OBSERVATION, actor="t", source="cli", reason="watch")
    engine = Engine.for_account(
        account=account,
        strategy_factory=Script,
        strategy_name="script",
        strategy_params={},
        stake=D(1000),
    )
    for i, (o, c) in enumerate([("99", "100"), ("101", "105"), ("108", "110"), ("111", "112")]):
        engine.on_bar(bar(i, o, c))
    otp_login(client, staff_user)

    # Act
    html = client.get(reverse("panel:risk")).content.decode()

    # Assert: total = 100 - (1.01 + 1.11) fees
    assert 'id="hypothetical"' in html
    assert 'id="hypo-total">97.88' in html
