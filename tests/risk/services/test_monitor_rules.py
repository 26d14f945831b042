"""The equity rules on replayed real bars (BTC/USDT 1h, the 2020-03-12 crash):
daily loss < -3 % -> automatic PAUSE; drawdown > 15 % -> automatic KILL (flat after)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from apps.audit.models import AuditEvent
from apps.engine.runner import Engine
from apps.marketdata.domain.csvfile import read_bars
from apps.model.bars import Bar
from apps.notifications.models import Alert
from apps.risk.domain.modes import SystemMode
from apps.risk.models import EquityMonitor, Incident, ModeChange
from apps.risk.services.modes import system_mode_get
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.models import Position
from apps.trading.selectors import risk_overview
from apps.trading.services.accounts import account_get_or_create
from tests.trading.factories import accepted_order, broker_fill, instrument

pytestmark = pytest.mark.django_db

CRASH = Path(__file__).resolve().parents[1] / "data" / "BTC-USDT_1h_binance-2020-03-crash.csv"
SYMBOL = "BTC-USDT"
DAY = datetime(2020, 3, 12, tzinfo=UTC)


class Hold:
    """A strategy that never trades: the test is about marking equity."""

    name = "hold"
    params: dict[str, int] = {}

    def decide(self, bar: Bar) -> SignalAction:
        return SignalAction.HOLD

    def on_bar(self, bar: Bar) -> Signal:
        return Signal(
            instrument=bar.instrument,
            ts=bar.ts,
            action=SignalAction.HOLD,
            price=bar.close,
            inputs={},
        )


def replay(quantity: str, until: datetime) -> tuple[list[Bar], object]:
    """Cash 10000, long ``quantity`` BTC bought at the 2020-03-12 00:00 close, then replay."""
    bars = [b for b in read_bars(CRASH) if DAY <= b.ts <= until]
    account = account_get_or_create(name="paper", starting_cash=D(10000))
    order = accepted_order(account, instrument(SYMBOL), quantity=quantity)
    broker_fill(order, trade_id="seed", quantity=D(quantity), price=bars[0].close, ts=bars[0].ts)
    engine = Engine.for_account(
        account=account,
        strategy_factory=Hold,
        strategy_name="hold",
        strategy_params={},
        stake=D(0),
        timeframe="1h",
    )
    for bar in bars:
        engine.on_bar(bar)
    return bars, account


def test_daily_loss_over_3_pct_pauses_once_with_a_warning_first() -> None:
    # 0.4 BTC (~32 % of equity): -2.2 % at 09:00 (warning), -7.6 % at 10:00 (PAUSE),
    # drawdown stays under 10 %.
    replay("0.4", datetime(2020, 3, 12, 12, tzinfo=UTC))

    assert system_mode_get() is SystemMode.PAUSE
    change = ModeChange.objects.get(to_mode="pause")
    assert (change.actor, change.source) == ("rule:daily_loss", "rule")
    assert "daily P&L" in change.reason
    assert "2020-03-12" in change.reason
    assert Alert.objects.filter(code="daily_loss_warning:2020-03-12", severity="warning").exists()
    pause_alert = Alert.objects.get(code="daily_loss_pause:2020-03-12")
    assert pause_alert.severity == "critical"
    assert D(pause_alert.data["daily_pnl_pct"]) < D("-0.03")
    monitor = EquityMonitor.objects.get()
    assert monitor.day_start == DAY
    assert monitor.day_start_equity == D(10000)
    assert monitor.drawdown < D("0.10")
    assert ModeChange.objects.filter(to_mode="pause").count() == 1  # once a day
    assert not Alert.objects.filter(code__startswith="drawdown").exists()


def test_drawdown_over_15_pct_kills_and_flattens_at_the_last_mark() -> None:
    # 1.2 BTC (~95 % of equity): 03:00 -3.0 % daily -> PAUSE; 10:00 close 6014.9 -> 22.8 %
    # drawdown -> KILL, the position closed at once at that close.
    bars, account = replay("1.2", datetime(2020, 3, 12, 12, tzinfo=UTC))

    assert system_mode_get() is SystemMode.KILL
    kill = ModeChange.objects.get(to_mode="kill")
    assert (kill.actor, kill.source, kill.from_mode) == ("rule:drawdown", "rule", "pause")
    assert "drawdown" in kill.reason
    assert Incident.objects.get().mode_change == kill
    position = Position.objects.get(account=account)
    assert position.quantity == 0
    close_bar = next(b for b in bars if b.ts == datetime(2020, 3, 12, 10, tzinfo=UTC))
    closing = AuditEvent.objects.get(action="kill.engaged").data
    assert closing["flat"] is True
    assert len(closing["closing_orders"]) == 1
    fill = account.fills.order_by("-id").first()
    assert (fill.side, fill.price) == ("sell", close_bar.close)
    assert Alert.objects.get(code="drawdown_kill").severity == "critical"
    # After the kill the equity is flat cash: the drawdown stays, no second KILL.
    assert ModeChange.objects.filter(to_mode="kill").count() == 1
    overview = risk_overview("paper")
    assert D(overview["drawdown"]) > D("0.15")
    assert overview["exposures"] == []
