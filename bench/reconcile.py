"""Reconciliation of a big book: 10,000 open orders and 2,000 positions.

Usage (needs PostgreSQL)::

    make bench BENCH=reconcile      # or: scripts/services.py test -- python bench/reconcile.py

Figures:

- ``compare only``: the pure comparison (apps.brokers.domain.reconcile) of 10,000 orders
  and 2,000 positions, both sides already in memory: the algorithm's own cost.
- ``reconcile_account``: the whole service path against the paper broker (whose book
  is the database): fills re-requested, in-flight orders settled, both sides read,
  compared, recorded, audited. Target: under 500 ms.

Baseline in the same run: reading the 10,000 orders and 2,000 positions once
(the floor any reconciliation pays). Nothing is asserted; figures are printed.
Database: one it creates on DATABASE_URL's server and drops at the end (the one
DATABASE_URL names if it does not exist yet, else ``<name>_bench_reconcile_<hex>``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import bench_database, row  # noqa: E402

ORDERS = 10_000
POSITIONS = 2_000


def setup_book() -> None:
    from apps.accounts.models import Account
    from apps.marketdata.models import Instrument
    from apps.trading.models import Order, Position

    account = Account.objects.create(
        name="bench", starting_cash=Decimal(10**8), cash=Decimal(10**8), peak_equity=Decimal(10**8)
    )
    instruments = Instrument.objects.bulk_create(
        [
            Instrument(symbol=f"X{i:04d}-USD", base=f"X{i:04d}", quote="USD")
            for i in range(POSITIONS)
        ]
    )
    Position.objects.bulk_create(
        [
            Position(
                account=account,
                instrument=inst,
                quantity=Decimal(1 + i % 5),
                avg_price=Decimal(100),
                last_price=Decimal(101),
            )
            for i, inst in enumerate(instruments)
        ]
    )
    Order.objects.bulk_create(
        [
            Order(
                account=account,
                instrument=instruments[i % POSITIONS],
                client_order_id=f"tb-{uuid.uuid4().hex}",
                broker_order_id=f"paper-b{i}",
                side="buy",
                order_type="limit",
                quantity=Decimal(1),
                limit_price=Decimal(50),
                status="accepted",
            )
            for i in range(ORDERS)
        ],
        batch_size=2000,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"reconcile bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{ORDERS} open orders, {POSITIONS} positions, {args.runs} runs"
    )
    with bench_database("reconcile"):
        logging.getLogger("apps.brokers.services").setLevel(logging.WARNING)
        from apps.accounts.models import Account
        from apps.brokers.domain.reconcile import OurOrder, compare_orders, compare_positions
        from apps.brokers.services.reconcile import reconcile_account
        from apps.model.orders import OrderStatus
        from apps.trading.models import Order, Position
        from apps.trading.venues.paper import PaperVenue

        setup_book()
        account = Account.objects.get(name="bench")
        venue = PaperVenue(account)
        broker_open = venue.open_orders()
        broker_pos = {p.instrument: p.quantity for p in venue.positions()}
        ours = [
            OurOrder(
                o.client_order_id,
                o.broker_order_id,
                o.instrument.symbol,
                OrderStatus(o.status),
                o.quantity,
                o.filled_quantity,
            )
            for o in Order.objects.select_related("instrument")
        ]
        our_pos = dict(Position.objects.values_list("instrument__symbol", "quantity"))

        baseline, compare, full = [], [], []
        tol = Decimal("1e-8")
        for _ in range(args.runs):
            t0 = time.perf_counter()
            list(Order.objects.values_list("client_order_id", "broker_order_id", "filled_quantity"))
            list(Position.objects.values_list("instrument__symbol", "quantity"))
            baseline.append((time.perf_counter() - t0) * 1000)

            t0 = time.perf_counter()
            found = compare_orders(ours, broker_open, tolerance=tol) + compare_positions(
                our_pos, broker_pos, tolerance=tol
            )
            compare.append((time.perf_counter() - t0) * 1000)
            assert not found, found[:3]

            t0 = time.perf_counter()
            run = reconcile_account(account=account, trigger="command", actor="bench")
            full.append((time.perf_counter() - t0) * 1000)
            if run.outcome != "clean":
                print(f"  unexpected outcome {run.outcome}: {run.error}")
                return 1
        print(
            f"  (last run: {run.orders_checked} orders, {run.positions_checked} positions checked)"
        )
        row("baseline: read orders + positions once", baseline)
        row("compare only (pure, in memory)", compare)
        row("reconcile_account (paper broker, full path)", full)
        verdict = "met" if sorted(full)[len(full) // 2] < 500 else "MISSED"
        print(f"  target: full reconciliation under 500 ms (p50) -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
