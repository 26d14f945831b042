"""Data for the ops tests: a small trading history in every key table (through the services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
from django.db import connection

from apps.audit.services import audit_record, decision_record
from apps.marketdata.models import Bar
from apps.trading.models import Fill, Position
from tests.trading.factories import accepted_order, instrument, paper_account

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def seed_history(bars: int = 200) -> dict[str, int]:
    account = paper_account()
    btc = instrument("BTC-USD")
    Bar.objects.bulk_create(
        Bar(
            instrument=btc,
            timeframe="1m",
            ts=T0 + timedelta(minutes=i),
            open=Decimal("60000") + i,
            high=Decimal("60010") + i,
            low=Decimal("59990") + i,
            close=Decimal("60005.5") + i,
            volume=Decimal("1.25"),
        )
        for i in range(bars)
    )
    for i in range(3):
        order = accepted_order(account, btc, quantity="0.5", decision_ts=T0 + timedelta(minutes=i))
        Fill.objects.create(
            account=account,
            order=order,
            trade_id=f"t-{i}",
            side="buy",
            quantity=Decimal("0.5"),
            price=Decimal("60000.12345678"),
            fee=Decimal("3.0"),
            ts=T0 + timedelta(minutes=i, seconds=5),
        )
        decision_record(
            bar_ts=T0 + timedelta(minutes=i),
            account=account.name,
            instrument=btc.symbol,
            strategy="sma_cross",
            strategy_params={"fast": "10"},
            inputs={"close": "60000"},
            signal="buy",
            mode="normal",
            checks=[{"name": "max_notional", "passed": True}],
            action="buy",
            order_ids=[order.client_order_id],
        )
    Position.objects.create(
        account=account, instrument=btc, quantity=Decimal("1.5"), avg_price=Decimal("60000.12")
    )
    audit_record(actor="test", action="seed", data={"n": 1})
    return table_fingerprint()


KEY = {
    "orders": "trading_order",
    "fills": "trading_fill",
    "positions": "trading_position",
    "decision_log": "audit_decisionlog",
    "audit_events": "audit_auditevent",
    "bars": "marketdata_bar",
}


def table_fingerprint(dbname: str | None = None) -> dict[str, tuple[int, str]]:
    """Per table: (row count, md5 of all rows ordered by every column's text) - independent
    of apps.ops' own checksum code."""
    s = connection.settings_dict
    out = {}
    with psycopg.connect(
        host=s["HOST"], port=s["PORT"], user=s["USER"], password=s["PASSWORD"] or None,
        dbname=dbname or s["NAME"],
    ) as conn:  # fmt: skip
        conn.execute("SET TimeZone = 'UTC'")
        for key, table in KEY.items():
            n, digest = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"  # noqa: S608
            ).fetchone()
            out[key] = (n, digest)
    return out
