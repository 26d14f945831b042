"""Data behind every metric and dashboard panel: orders with known slippage, fills, marks,
positions with a month of daily bars (VaR, correlations), a feed, an ML model with a
calibration snapshot and a backup run. Built through the services where one exists."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from apps.accounts.models import Account
from apps.marketdata.services import bars_store, feed_status_update, instrument_get_or_create
from apps.ml.models import CalibrationSnapshot, ModelVersion
from apps.model.bars import Bar as BarValue
from apps.model.orders import Fill as FillValue
from apps.model.values import Side
from apps.ops.services.maintenance import maintenance_run
from apps.trading.models import Order
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.common import new_client_order_id
from apps.trading.services.fills import fill_apply
from apps.trading.services.marking import mark_to_market

ACCOUNT = "metrics"
# (side, decision price, fill price): slippage +50, +50 and -10 bps, mean +30 bps.
FILLED = (
    ("buy", "100", "100.5"),
    ("sell", "200", "199"),
    ("buy", "100", "99.9"),
)
SLIPPAGE_BPS = 30.0
# 3 filled of 5 finished at the broker (+1 canceled, +1 rejected); denied and working
# orders are not counted.
FILL_RATE = 0.6
ORDERS_TODAY = 7


def _order(account: Account, symbol: str, side: str, status: str, decision: str) -> Order:
    # No service creates a bare order (decision_make needs a strategy signal).
    now = timezone.now()
    return Order.objects.create(
        account=account,
        instrument=instrument_get_or_create(symbol=symbol),
        client_order_id=new_client_order_id(),
        side=side,
        order_type="market",
        quantity=Decimal("1"),
        decision_price=Decimal(decision),
        status=status,
        submitted_at=None if status == "denied" else now,
        decision_bar_ts=now,
    )


def _daily_bars(symbol: str, days: int, base: float, phase: float) -> list[BarValue]:
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    bars = []
    for i in range(days):
        close = Decimal(str(round(base * (1 + 0.03 * math.sin(i * 0.9 + phase)), 2)))
        bars.append(
            BarValue(
                instrument=symbol,
                ts=today - timedelta(days=days - i),
                open=close,
                high=close * Decimal("1.01"),
                low=close * Decimal("0.99"),
                close=close,
                volume=Decimal("10"),
            )
        )
    return bars


def observability_data_create() -> Account:
    account = account_get_or_create(name=ACCOUNT, starting_cash=Decimal("100000"))
    for i, (side, decision, price) in enumerate(FILLED):
        symbol = "ETH-USD" if side == "sell" else "BTC-USD"
        order = _order(account, symbol, side, "accepted", decision)
        fill_apply(
            fill=FillValue(
                trade_id=f"metrics-{i}",
                client_order_id=order.client_order_id,
                instrument=symbol,
                side=Side(side),
                quantity=Decimal("1"),
                price=Decimal(price),
                fee=Decimal("0.1"),
                ts=timezone.now(),
            )
        )
    _order(account, "BTC-USD", "buy", "canceled", "100")
    _order(account, "BTC-USD", "buy", "rejected", "100")
    _order(account, "BTC-USD", "buy", "denied", "100")
    _order(account, "BTC-USD", "buy", "accepted", "100")

    bars_store(bars=_daily_bars("BTC-USD", 40, 100.0, 0.0), timeframe="1d")
    bars_store(bars=_daily_bars("ETH-USD", 40, 200.0, 0.7), timeframe="1d")
    now = timezone.now()
    for minutes in (30, 20, 10, 0):
        mark_to_market(
            account=account,
            prices={"BTC-USD": Decimal("101") - Decimal(minutes) / 10, "ETH-USD": Decimal("198")},
            ts=now - timedelta(minutes=minutes),
        )
    feed_status_update(feed="replay:BTC-USD_1m", last_bar_ts=now, accepted=5, rejected={"nan": 1})

    model = ModelVersion.objects.create(
        version="m-metrics-1",
        created_by="test",
        algorithm="hgb",
        instrument="BTC-USD",
        train_start=now - timedelta(days=30),
        train_end=now - timedelta(days=10),
        heldout_start=now - timedelta(days=10),
        heldout_end=now,
        data_path="-",
        data_sha256="0" * 64,
        file_path="-",
        file_sha256="0" * 64,
        status="active",
    )
    CalibrationSnapshot.objects.create(
        model_version=model, n=500, n_bins=10, ece=0.042, brier=0.21, psi_max=0.08, level="ok"
    )
    with maintenance_run(task="backup", actor="test"):
        pass
    return account
