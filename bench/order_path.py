"""Submit to acknowledgement through the execution queue, against the loopback broker fakes.

Usage (needs PostgreSQL and Redis)::

    make bench BENCH=order_path

For each broker (Kraken through ccxt against the Kraken REST fake, Interactive Brokers
through ib_async against the TWS fake), ``--orders`` orders are sent one at a time the
way the engine sends them: an INITIALIZED order row, ``order_send.delay``, Redis, a real
``celery worker -Q execution -P solo``, the adapter, the fake's ack, the row ACCEPTED.
Latency = from ``delay()`` to the row read back ACCEPTED (polled every 0.5 ms).

Baseline in the same run: the adapter's own ``submit`` called in this process (no queue,
no database) against the same fake: the broker round trip every path pays.
Throwaway database created on DATABASE_URL's server and dropped at the end (the one
DATABASE_URL names if it does not exist yet, else ``<name>_bench_order_path_<hex>``); Redis
database ``BENCH_REDIS_DB`` (default 14) on REDIS_URL's server. Nothing is asserted; figures
are printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import REPO, Worker, bench_database, redis_db_url, row  # noqa: E402

sys.path.insert(0, str(REPO))


# IB allows 50 API messages a second per connection (ib_async holds sends back at 45/s):
# IBKR orders are sent at most 40 a second, so the figures are the round trip, not IB's
# pacing (bench/README.md, order_path). Kraken's fake has no such limit.
SPACING = {"kraken": 0.0, "ibkr": 0.025}


def _order(account, instrument, quantity: Decimal):  # noqa: ANN001, ANN202
    from apps.trading.models import Order

    return Order.objects.create(
        account=account, instrument=instrument, client_order_id=f"tb-{uuid.uuid4().hex}",
        side="buy", order_type="market", quantity=quantity, status="initialized",
        decision_price=Decimal(100),
    )  # fmt: skip


def _pace(previous: float, spacing: float) -> float:
    """Wait until ``spacing`` seconds after ``previous``; return the new start time."""
    delay = previous + spacing - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    return time.perf_counter()


def through_queue(
    account,
    instrument,
    quantity: Decimal,
    n: int,
    spacing: float = 0.0,  # noqa: ANN001
) -> list[float]:
    from apps.trading.models import Order
    from apps.trading.tasks import order_send

    out = []
    started = 0.0
    for _ in range(n):
        order = _order(account, instrument, quantity)
        started = _pace(started, spacing)
        t0 = time.perf_counter()
        order_send.delay(order_id=order.pk)
        while True:
            status = Order.objects.filter(pk=order.pk).values_list("status", flat=True)[0]
            if status == "accepted":
                break
            if status in ("rejected", "denied", "canceled"):
                raise RuntimeError(f"order {order.client_order_id} ended {status}")
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"order {order.client_order_id} still {status} after 30 s")
            time.sleep(0.0005)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def direct(
    venue,
    account,
    instrument,
    quantity: Decimal,
    n: int,
    spacing: float = 0.0,  # noqa: ANN001
) -> list[float]:
    from apps.trading.venues.mapping import venue_order

    out = []
    started = 0.0
    for _ in range(n):
        order = _order(account, instrument, quantity)
        request = venue_order(order)
        started = _pace(started, spacing)
        t0 = time.perf_counter()
        venue.submit(request)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    print(
        f"order path bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{args.orders} orders per broker, sent one at a time"
    )
    os.environ.setdefault("ENVIRONMENT", "test")
    redis = redis_db_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        int(os.environ.get("BENCH_REDIS_DB", "14")),
    )
    os.environ["REDIS_URL"] = redis
    from tests.fakes.kraken import KrakenFake
    from tests.fakes.tws import TwsFake

    with (
        KrakenFake(balances={"USD": "100000000"}) as kraken,
        TwsFake(cash={"USD": Decimal(100_000_000)}) as tws,
    ):
        broker_env = {
            "KRAKEN_API_URL": kraken.url,
            "KRAKEN_API_KEY": kraken.api_key,
            "KRAKEN_API_SECRET": kraken.api_secret,
            "KRAKEN_RATE_LIMIT": "false",
            "IBKR_HOST": "127.0.0.1",
            "IBKR_PORT": str(tws.port),
            "IBKR_CLIENT_ID": "7",
            "IBKR_ACCOUNT": "DU1234567",
        }
        os.environ.update(broker_env)
        with bench_database("order_path") as db_url:
            logging.disable(logging.INFO)
            from apps.marketdata.models import AssetClass, Instrument
            from apps.risk.models import RiskLimit
            from apps.trading.services.accounts import account_get_or_create
            from apps.trading.services.common import venue_for
            from tradebot.celery import app

            with app.connection_for_write() as conn:
                conn.default_channel.queue_purge("execution")
            btc = Instrument.objects.create(
                symbol="BTC-USD", base="BTC", quote="USD", tick_size=Decimal("0.1"),
                lot_size=Decimal("0.00000001"),
            )  # fmt: skip
            aapl = Instrument.objects.create(
                symbol="AAPL", base="AAPL", quote="USD", asset_class=AssetClass.EQUITY,
                tick_size=Decimal("0.01"), lot_size=Decimal(1),
            )  # fmt: skip
            accounts = {}
            for name in ("kraken", "ibkr"):
                accounts[name] = account_get_or_create(
                    name=name, broker=name, starting_cash=Decimal(100_000_000)
                )
                RiskLimit.objects.create(
                    account=accounts[name],
                    max_order_notional=Decimal(10_000),
                    max_position_notional=Decimal(10_000_000),
                )
            env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis}
            env.pop("DJANGO_SETTINGS_MODULE", None)
            results = {}
            with tempfile.TemporaryDirectory() as tmp:
                worker = Worker(env, Path(tmp) / "worker.log")
                worker.start(app)
                try:
                    for name, inst, qty in (
                        ("kraken", btc, Decimal("0.001")),
                        ("ibkr", aapl, Decimal(1)),
                    ):
                        gap = SPACING[name]
                        through_queue(accounts[name], inst, qty, 10, gap)  # warm-up (connect)
                        results[name] = through_queue(accounts[name], inst, qty, args.orders, gap)
                finally:
                    worker.stop()
            for name, inst, qty in (("kraken", btc, Decimal("0.001")), ("ibkr", aapl, Decimal(1))):
                venue = venue_for(accounts[name], purpose="control")
                venue.connect()
                gap = SPACING[name]
                direct(venue, accounts[name], inst, qty, 10, gap)
                results[f"{name}-direct"] = direct(
                    venue, accounts[name], inst, qty, args.orders, gap
                )
                venue.close()
    print("\nKraken (ccxt -> loopback Kraken REST fake)")
    row("baseline: adapter submit in process (broker round trip)", results["kraken-direct"])
    row("delay() -> worker -> Kraken ack -> row ACCEPTED", results["kraken"])
    print("\nInteractive Brokers (ib_async -> loopback TWS fake), at most 40 orders a second")
    row("baseline: adapter submit in process (broker round trip)", results["ibkr-direct"])
    row("delay() -> worker -> TWS ack -> row ACCEPTED", results["ibkr"])
    print(f"\n  ({kraken.add_order_calls} AddOrder calls at the Kraken fake)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
