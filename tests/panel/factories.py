"""Panel test data, built through the services the engine uses (real-looking numbers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings

from apps.accounts.models import Account
from apps.audit.services import decision_record
from apps.marketdata.services import feed_status_update, instrument_get_or_create
from apps.model.orders import Fill as FillValue
from apps.model.values import Side
from apps.trading.models import Order
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.common import new_client_order_id
from apps.trading.services.fills import fill_apply
from apps.trading.services.marking import mark_to_market

START = datetime(2024, 3, 1, tzinfo=UTC)


def _order(
    account: Account,
    symbol: str,
    side: str,
    qty: str,
    status: str,
    minutes: int,
    *,
    order_type: str = "market",
    limit: str | None = None,
    reason: str = "",
) -> Order:
    # No service creates a bare order (decision_make needs a strategy signal): plain rows are
    # enough for a read-only page.
    return Order.objects.create(
        account=account,
        instrument=instrument_get_or_create(symbol=symbol),
        client_order_id=new_client_order_id(),
        side=side,
        order_type=order_type,
        quantity=Decimal(qty),
        limit_price=Decimal(limit) if limit else None,
        status=status,
        status_reason=reason,
        decision_bar_ts=START + timedelta(minutes=minutes),
    )


def trading_history_create(*, points: int = 120) -> Account:
    """An account with fills, two positions, an equity curve, orders, decisions and feeds."""
    account = account_get_or_create(name=settings.ENGINE_ACCOUNT, starting_cash=Decimal("10000"))
    buy_btc = _order(account, "BTC-USD", "buy", "0.05", "accepted", 0)
    fill_apply(
        fill=FillValue(
            trade_id=f"paper-{buy_btc.client_order_id}-1",
            client_order_id=buy_btc.client_order_id,
            instrument="BTC-USD",
            side=Side.BUY,
            quantity=Decimal("0.05"),
            price=Decimal("61250.5"),
            fee=Decimal("3.0625"),
            ts=START,
        )
    )
    buy_eth = _order(account, "ETH-USD", "buy", "1.2", "accepted", 5)
    fill_apply(
        fill=FillValue(
            trade_id=f"paper-{buy_eth.client_order_id}-1",
            client_order_id=buy_eth.client_order_id,
            instrument="ETH-USD",
            side=Side.BUY,
            quantity=Decimal("1.2"),
            price=Decimal("3390.25"),
            fee=Decimal("4.0683"),
            ts=START + timedelta(minutes=5),
        )
    )
    _order(account, "ETH-USD", "sell", "0.6", "accepted", 200, order_type="limit", limit="3550")
    _order(
        account,
        "BTC-USD",
        "buy",
        "0.2",
        "denied",
        150,
        reason="max_order_notional: 12250.10 > 5000",
    )

    # A wavy equity curve with a drawdown in the middle.
    btc, eth = Decimal("61250.5"), Decimal("3390.25")
    for i in range(points):
        step = Decimal(((i * 37) % 23) - 11) / Decimal(10)
        trend = Decimal(i - points // 2) if i > points // 3 else Decimal(-i)
        btc_price = btc + trend * Decimal("9.5") + step * Decimal(40)
        eth_price = eth + trend * Decimal("0.8") + step * Decimal(3)
        mark_to_market(
            account=account,
            prices={"BTC-USD": btc_price, "ETH-USD": eth_price},
            ts=START + timedelta(minutes=5 * (i + 1)),
        )

    bar_ts = START + timedelta(minutes=5 * points)
    decisions = [
        ("BTC-USD", "61480.25", "hold", "hold", []),
        (
            "ETH-USD",
            "3401.5",
            "enter_long",
            "denied",
            [
                {
                    "name": "max_order_notional",
                    "passed": False,
                    "detail": "12250.10 > 5000",
                    "values": {},
                }
            ],
        ),
        (
            "BTC-USD",
            "61480.25",
            "enter_long",
            "buy",
            [{"name": "mode_gate", "passed": True, "detail": "", "values": {}}],
        ),
    ]
    for n, (symbol, close, signal, action, checks) in enumerate(decisions):
        decision_record(
            bar_ts=bar_ts - timedelta(minutes=5 * (len(decisions) - n)),
            account=account.name,
            instrument=symbol,
            strategy="sma_cross",
            strategy_params={"fast": 10, "slow": 30},
            inputs={"close": close},
            signal=signal,
            mode="normal",
            checks=checks,
            action=action,
        )
    feed_status_update(feed="replay:BTC-USD_5m", last_bar_ts=bar_ts, accepted=points)
    feed_status_update(
        feed="replay:ETH-USD_5m",
        last_bar_ts=bar_ts,
        accepted=points,
        rejected={"high_below_low": 2},
    )
    return account
