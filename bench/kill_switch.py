"""Kill switch latency with a full book at the paper broker.

Usage (needs PostgreSQL; ``make bench`` style)::

    ENVIRONMENT=test .venv/bin/python scripts/services.py test -- .venv/bin/python bench/kill_switch.py [--runs 5]

Each run sets up 200 open positions (200 instruments, over 2 accounts) and 500 working
(ACCEPTED) orders at the paper broker, then calls ``kill_switch_engage`` in process (no
Celery) and reports, from the moment of the request:

- mode KILL persisted (committed, with its ModeChange, audit row and incident),
- every cancel sent (all 500 orders CANCELED),
- every position flat (200 reduce-only closing orders through ``order_send`` and filled
  at the last mark by ``PaperVenue.fill_at_mark`` + ``fill_apply``).

Baselines measured in the same run: a ``SELECT 1`` round trip, and one position closed
alone (``position_close_now``), times 200. Target: flat < 1 s p99 over the runs.
The script sets itself up: a throwaway database it creates on DATABASE_URL's server (the
database DATABASE_URL names if it does not exist yet, else a new ``<name>_bench_kill_<hex>``;
bench/README.md, "Databases"), migrated, flushed between runs, dropped at the end.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import bench_database, row  # noqa: E402

POSITIONS = 200
ORDERS = 500
ACCOUNTS = 2


def setup_book() -> None:
    """200 positions marked at their last price and 500 ACCEPTED orders, mode NORMAL."""
    from django.core.management import call_command

    from apps.accounts.models import Account
    from apps.marketdata.models import Instrument
    from apps.trading.models import Order, Position

    call_command("flush", interactive=False, verbosity=0)
    accounts = [
        Account.objects.create(
            name=f"bench-{i}",
            starting_cash=Decimal(10_000_000),
            cash=Decimal(10_000_000),
            peak_equity=Decimal(10_000_000),
        )
        for i in range(ACCOUNTS)
    ]
    instruments = Instrument.objects.bulk_create(
        [
            Instrument(symbol=f"X{i:03d}-USD", base=f"X{i:03d}", quote="USD")
            for i in range(POSITIONS)
        ]
    )
    Position.objects.bulk_create(
        [
            Position(
                account=accounts[i % ACCOUNTS],
                instrument=inst,
                quantity=Decimal(1 + i % 7) * (1 if i % 3 else -1),
                avg_price=Decimal(100 + i),
                last_price=Decimal(101 + i),
            )
            for i, inst in enumerate(instruments)
        ]
    )
    Order.objects.bulk_create(
        [
            Order(
                account=accounts[i % ACCOUNTS],
                instrument=instruments[i % POSITIONS],
                client_order_id=f"tb-{uuid.uuid4().hex}",
                broker_order_id=f"paper-bench-{i}",
                side="buy" if i % 2 else "sell",
                order_type="limit",
                quantity=Decimal(1),
                limit_price=Decimal(50),
                status="accepted",
            )
            for i in range(ORDERS)
        ]
    )


def select1_ms(n: int = 200) -> list[float]:
    from django.db import connection

    out = []
    with connection.cursor() as cursor:
        for _ in range(n):
            t0 = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            out.append((time.perf_counter() - t0) * 1000)
    return out


def one_close_ms() -> float:
    """Baseline: one position closed alone in KILL, through the same path."""
    from apps.risk.models import SystemState
    from apps.trading.models import Position
    from apps.trading.services.kill_switch import position_close_now

    SystemState.objects.update_or_create(pk=1, defaults={"mode": "kill"})
    position = Position.objects.exclude(quantity=0).select_related("account", "instrument").first()
    t0 = time.perf_counter()
    position_close_now(position=position, actor="bench", reason="baseline")
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"kill switch bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{POSITIONS} positions, {ORDERS} working orders, {ACCOUNTS} accounts, {args.runs} runs"
    )
    with bench_database("kill"):
        logging.getLogger("apps.risk.services").setLevel(logging.CRITICAL)
        from django.utils import timezone

        from apps.trading.models import Order, Position
        from apps.trading.services.kill_switch import kill_switch_engage

        persisted, cancelled, flat, total = [], [], [], []
        singles = []
        for run in range(args.runs):
            setup_book()
            singles.append(one_close_ms())
            setup_book()
            start = timezone.now()
            t0 = time.perf_counter()
            report = kill_switch_engage(actor="bench", source="cli", reason=f"bench run {run}")
            total.append((time.perf_counter() - t0) * 1000)
            persisted.append((report.mode_persisted_at - start).total_seconds() * 1000)
            cancelled.append((report.cancels_done_at - start).total_seconds() * 1000)
            flat.append(
                (report.flat_at - start).total_seconds() * 1000 if report.flat_at else math.inf
            )
            assert report.flat, report
            assert report.cancels_sent == ORDERS, report
            assert not Position.objects.exclude(quantity=0).exists()
            assert Order.objects.filter(status="canceled").count() == ORDERS
        print("baselines")
        row("SELECT 1 round trip", select1_ms())
        row("one position closed alone (position_close_now)", singles)
        row(
            f"  x {POSITIONS} (the closing loop, if nothing is shared)",
            [s * POSITIONS for s in singles],
        )
        print("kill_switch_engage, from the request")
        row("mode KILL persisted", persisted)
        row(f"all {ORDERS} cancels sent", cancelled)
        row(f"all {POSITIONS} positions flat", flat)
        row("call returned (report, incident, alert written)", total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
