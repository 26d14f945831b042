"""Time of one /metrics scrape with every collector, on a database with a year of history.

Usage (needs PostgreSQL and Redis; ``make bench`` style)::

    ENVIRONMENT=test .venv/bin/python scripts/services.py test -- .venv/bin/python bench/metrics_scrape.py [--scrapes 200]

Data (a throwaway database on DATABASE_URL's server, created, migrated and dropped at the
end: the one DATABASE_URL names if it does not exist yet, else ``<name>_bench_metrics_<hex>``;
Redis database ``BENCH_REDIS_DB``, default 13, flushed): 2 accounts; 20,000 orders spread
over the last 365 days (about 55 a day: filled with a decision price, canceled, rejected,
denied, working) with a fill per filled order; 8 open positions; a year of equity snapshots
every minute for one account (525,600 rows) and every hour for the other; one-minute bars
of the 8 held instruments over the VaR window (``--bar-days``, default 250: 2.9 M rows, what
the VaR reads); feeds; a year of live ML on three instruments (``--ml-days``, default 365):
an active and a retired model, one prediction per instrument per minute (1,576,800, all
resolved but the last 30 minutes' on the active model) and a calibration snapshot every
15 minutes (35,040); maintenance runs; Celery histograms of 12 tasks and 6 reporting
processes in Redis, and messages waiting on the broker. The predictions go through the
counting triggers (migration ml 0002: one counter write per statement).

Rows (each ``GET /metrics`` through Django's test client, middleware included; p50 / p99):

- baseline: django-prometheus alone (every Tradebot collector unregistered);
- full set, VaR cache warm (holdings unchanged since the last scrape);
- full set, holdings re-marked before every scrape with the VaR refresh age at 0 (the worst
  case: a recompute always running; the default refreshes at most once a minute): the
  scrape serves the last VaR and a background thread (apps.trading.risk_metrics.RiskCache)
  recomputes it, competing for the CPU; that recompute timed alone (``var_and_correlation`` with a
  cold cache, one account, 4 instruments);
- each Tradebot collector's ``collect()`` alone (warm), to see where the time goes.

Target: full set p99 < 50 ms: the last line says MET or MISSED. The load average is printed
before and after (the machine may be shared: read the figures with it). Nothing is
asserted (timings vary with the machine's load).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import bench_database, percentile, redis_db_url  # noqa: E402
from _support import row as _row  # noqa: E402

ORDERS = 20_000
HELD = 8
INSTRUMENTS = 20
ML_INSTRUMENTS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
ML_HORIZON = 30
ML_FEATURES = 12


def row(label: str, values_ms: list[float]) -> None:
    _row(label, values_ms, digits=2)


def copy_rows(table: str, columns: tuple[str, ...], rows) -> int:
    """COPY rows (tuples) into a table; returns the count."""
    from django.db import connection

    n = 0
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for r in rows:
            copy.write_row(r)
            n += 1
    return n


def seed_ml(now, days: int) -> None:
    """A year of live ML: one prediction a minute on each of three instruments."""
    from apps.ml.models import ModelVersion

    t0 = time.perf_counter()
    common = {
        "created_by": "bench",
        "algorithm": "hgb",
        "instrument": ML_INSTRUMENTS[0],
        "train_start": now - timedelta(days=days + 60),
        "train_end": now - timedelta(days=days + 20),
        "heldout_start": now - timedelta(days=days + 20),
        "heldout_end": now - timedelta(days=days),
        "data_path": "-",
        "data_sha256": "0" * 64,
        "file_path": "-",
        "file_sha256": "0" * 64,
        "params": {"horizon": ML_HORIZON},
        "feature_names": [f"f{i}" for i in range(ML_FEATURES)],
    }
    retired = ModelVersion.objects.create(version="bench-0", status="retired", **common)
    active = ModelVersion.objects.create(version="bench-1", status="active", **common)
    minutes = days * 1440
    half = minutes // 2  # the first half of the year on the retired model
    start = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    features = "[" + ", ".join(["0.125"] * ML_FEATURES) + "]"

    def predictions():
        for symbol in ML_INSTRUMENTS:
            for m in range(minutes):
                ts = start + timedelta(minutes=m)
                pending = m >= minutes - ML_HORIZON
                yield (
                    (retired if m < half else active).id,
                    symbol,
                    ts,
                    ts,
                    ML_HORIZON,
                    0.35 + (m % 30) / 100,
                    features,
                    "x",
                    None if pending else m % 3 == 0,
                    None if pending else ts + timedelta(minutes=ML_HORIZON),
                )

    n = copy_rows(
        "ml_prediction",
        (
            "model_version_id",
            "instrument",
            "bar_ts",
            "created_at",
            "horizon",
            "probability",
            "features",
            "features_hash",
            "outcome",
            "resolved_at",
        ),
        predictions(),
    )

    def snapshots():
        for k in range(minutes // 15):
            mv = retired if k * 15 < half else active
            yield (
                mv.id,
                start + timedelta(minutes=15 * k),
                500,
                10,
                0.04,
                0.1,
                "ok",
                "[]",
                "{}",
                "[]",
            )

    s = copy_rows(
        "ml_calibrationsnapshot",
        (
            "model_version_id",
            "created_at",
            "n",
            "n_bins",
            "ece",
            "psi_max",
            "level",
            "bins",
            "psi",
            "drifted",
        ),
        snapshots(),
    )
    print(
        f"  ML: {n:,} predictions ({len(ML_INSTRUMENTS)} instruments x {days} days, 2 models), "
        f"{s:,} calibration snapshots in {time.perf_counter() - t0:.1f} s"
    )


def seed_database(bar_days: int, ml_days: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import Account
    from apps.marketdata.models import FeedStatus, Instrument
    from apps.ops.models import MaintenanceRun
    from apps.risk.models import EquityMonitor
    from apps.trading.models import Position

    now = timezone.now()
    t0 = time.perf_counter()
    accounts = [
        Account.objects.create(
            name=f"bench-{i}",
            starting_cash=Decimal(1_000_000),
            cash=Decimal(900_000),
            peak_equity=Decimal(1_050_000),
        )
        for i in range(2)
    ]
    instruments = Instrument.objects.bulk_create(
        Instrument(symbol=f"X{i:02d}-USD", base=f"X{i:02d}", quote="USD")
        for i in range(INSTRUMENTS)
    )
    statuses = ["filled"] * 6 + ["canceled", "rejected", "denied", "accepted"]
    order_rows = []
    for i in range(ORDERS):
        status = statuses[i % len(statuses)]
        decided = Decimal(100 + i % 50)
        filled = status == "filled"
        side = "buy" if i % 2 else "sell"
        created = now - timedelta(minutes=i * 26)  # 20,000 x 26 min = a year
        order_rows.append(
            (
                accounts[i % 2].id,
                instruments[i % INSTRUMENTS].id,
                f"tb-bench-{i}",
                side,
                "market",
                Decimal(1),
                decided,
                False,
                status,
                Decimal(1) if filled else Decimal(0),
                decided * (Decimal("1.0005") if side == "buy" else Decimal("0.9995"))
                if filled
                else None,
                Decimal("0.1") if filled else Decimal(0),
                "",
                created,
                created,
                None if status == "denied" else created,
            )
        )
    copy_rows(
        "trading_order",
        (
            "account_id",
            "instrument_id",
            "client_order_id",
            "side",
            "order_type",
            "quantity",
            "decision_price",
            "reduce_only",
            "status",
            "filled_quantity",
            "avg_fill_price",
            "fees",
            "status_reason",
            "created_at",
            "updated_at",
            "submitted_at",
        ),
        order_rows,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO trading_fill (account_id, order_id, trade_id, side, quantity, price, fee,
                                      realized_pnl, ts, created_at)
            SELECT account_id, id, 'f-' || id, side, 1, avg_fill_price, 0.1, 0, created_at,
                   created_at
            FROM trading_order WHERE status = 'filled'
            """
        )
        fills = cursor.rowcount
    Position.objects.bulk_create(
        Position(
            account=accounts[i % 2],
            instrument=instruments[i],
            quantity=Decimal(10 + i) * (1 if i % 3 else -1),
            avg_price=Decimal(100 + i),
            last_price=Decimal(101 + i),
        )
        for i in range(HELD)
    )
    print(f"  orders {ORDERS:,}, fills {fills:,}, positions {HELD}")

    def snapshots(account_id: int, step: timedelta, count: int):
        for k in range(count):
            equity = Decimal(1_000_000) + Decimal(k % 5000) - Decimal(2500)
            yield (
                account_id,
                now - step * (count - k),
                now,
                equity,
                Decimal(900_000),
                Decimal(1000),
                Decimal(500),
                Decimal(100),
                Decimal("0.01"),
            )

    columns = (
        "account_id",
        "ts",
        "created_at",
        "equity",
        "cash",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "drawdown",
    )
    n = copy_rows(
        "trading_equitysnapshot", columns, snapshots(accounts[0].id, timedelta(minutes=1), 525_600)
    )
    n += copy_rows(
        "trading_equitysnapshot", columns, snapshots(accounts[1].id, timedelta(hours=1), 8_760)
    )
    print(f"  equity snapshots {n:,}")
    for account in accounts:
        EquityMonitor.objects.create(
            account=account,
            ts=now,
            equity=Decimal(1_000_000),
            peak_equity=Decimal(1_050_000),
            drawdown=Decimal("0.0476"),
            day_start=now.replace(hour=0, minute=0, second=0, microsecond=0),
            day_start_equity=Decimal(1_010_000),
            daily_pnl_pct=Decimal("-0.0099"),
            open_positions=HELD // 2,
        )

    def bars():
        start = (now - timedelta(days=bar_days)).replace(second=0, microsecond=0)
        for inst in instruments[:HELD]:
            base = 100 + inst.id % 50
            for m in range(bar_days * 1440):
                close = Decimal(base) + Decimal((m * 7919 + inst.id * 31) % 400) / 100
                yield (inst.id, "1m", start + timedelta(minutes=m), close, close, close, close, 1)

    n = copy_rows(
        "marketdata_bar",
        ("instrument_id", "timeframe", "ts", "open", "high", "low", "close", "volume"),
        bars(),
    )
    print(f"  one-minute bars {n:,} ({HELD} instruments x {bar_days} days)")
    for i in range(4):
        FeedStatus.objects.create(feed=f"replay:X{i:02d}-USD_1m", last_update=now, bars_rejected=i)
    seed_ml(now, ml_days)
    MaintenanceRun.objects.bulk_create(
        MaintenanceRun(
            task=task, started_at=now - timedelta(days=d), finished_at=now, outcome="ok", actor="b"
        )
        for task in ("backup", "vacuum", "logs_rotate", "heartbeat")
        for d in range(365)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"  seeded in {time.perf_counter() - t0:.1f} s")


def seed_redis() -> None:
    import json

    from django.conf import settings

    from apps.core import metrics_store
    from apps.ops.celery_metrics import OUTCOMES, RUNTIME, WAIT

    conn = metrics_store.client()
    conn.flushdb()
    batch = metrics_store.Batch()
    for t in range(12):
        for k in range(200):
            labels = (f"bench.task_{t}", "execution" if t < 3 else "maintenance")
            batch.observe(WAIT, labels, 0.001 * (k % 50))
            batch.observe(RUNTIME, labels, 0.01 * (k % 30))
            batch.inc(OUTCOMES, (*labels, "success"))
    batch.send()
    for p in range(6):
        snap = {
            "process": f"worker@box{p % 2}",
            "host": "box",
            "pid": 1000 + p,
            "cpu_seconds": 12.5,
            "rss_bytes": 150_000_000,
            "start_time": time.time() - 3600,
            "ts": time.time() + 3600,  # stays fresh for the run
        }
        conn.hset(
            metrics_store.PROCESS_KEY, f"{snap['process']}|box|{snap['pid']}", json.dumps(snap)
        )
    broker = metrics_store.client(settings.CELERY_BROKER_URL)
    broker.rpush("ml", *[f"m{i}" for i in range(50)])


def scrape_ms(client, n: int, before=None) -> list[float]:
    out = []
    for _ in range(n):
        if before is not None:
            before()
        t0 = time.perf_counter()
        response = client.get("/metrics")
        out.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--bar-days", type=int, default=250)
    parser.add_argument("--ml-days", type=int, default=365)
    args = parser.parse_args()
    print(f"metrics scrape bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    redis_url = redis_db_url(
        os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        int(os.environ.get("BENCH_REDIS_DB", "13")),
    )
    os.environ["REDIS_URL"] = redis_url
    os.environ.pop("CELERY_BROKER_URL", None)
    with bench_database("metrics"):
        logging.disable(logging.WARNING)
        from django.test import Client
        from django.test.utils import setup_test_environment
        from prometheus_client import REGISTRY

        from apps.core import metrics_store
        from apps.risk import selectors as risk_selectors
        from apps.trading.models import Position

        setup_test_environment()  # the test client needs "testserver" allowed
        print("seeding")
        seed_database(args.bar_days, args.ml_days)
        seed_redis()
        client = Client()
        ours = [
            c
            for c in list(REGISTRY._collector_to_names)  # noqa: SLF001
            if type(c).__module__.startswith("apps.")
        ]
        n = args.scrapes

        for c in ours:
            REGISTRY.unregister(c)
        scrape_ms(client, 20)  # warm-up
        baseline = scrape_ms(client, n)
        size_base = len(client.get("/metrics").content)
        for c in ours:
            REGISTRY.register(c)
        scrape_ms(client, 20)
        warm = scrape_ms(client, n)
        size_full = len(client.get("/metrics").content)
        # Live trading re-marks the holdings between scrapes: the scrape serves the last VaR
        # and a background thread recomputes it (apps.trading.risk_metrics.RiskCache).
        from django.db import connection

        from apps.trading.risk_metrics import _risk_cache

        _risk_cache.max_age = 0.0

        def remark() -> None:
            with connection.cursor() as cursor:
                cursor.execute("UPDATE trading_position SET last_price = last_price + 0.01")

        remarked = scrape_ms(client, n, before=remark)
        _risk_cache.wait(timeout=600)
        _risk_cache.max_age = 60.0  # back to the default; the cache current again
        scrape_ms(client, 1)
        _risk_cache.wait(timeout=600)
        recompute = []
        for _ in range(3):
            risk_selectors._var_cache.clear()  # noqa: SLF001
            holdings = {
                p.instrument.symbol: (p.instrument_id, p.last_price * p.quantity)
                for p in Position.objects.filter(account__name="bench-0").select_related(
                    "instrument"
                )
            }
            t0 = time.perf_counter()
            risk_selectors.var_and_correlation(holdings=holdings)
            recompute.append((time.perf_counter() - t0) * 1000)

        print(f"/metrics through the test client ({size_base:,} -> {size_full:,} bytes)")
        counts = {
            (v, r): REGISTRY.get_sample_value(
                "ml_predictions_total", {"model_version": v, "resolved": r}
            )
            for v in ("bench-0", "bench-1")
            for r in ("true", "false")
        }
        print(f"  ml_predictions_total (model, resolved): {counts}")
        row("baseline: django-prometheus alone", baseline)
        row("full set, VaR cache warm", warm)
        row("full set, holdings re-marked before every scrape", remarked)
        row("  the VaR recompute it starts (in the background)", recompute)
        print("each Tradebot collector alone (warm)")
        for c in ours:
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                list(c.collect())
                times.append((time.perf_counter() - t0) * 1000)
            row(type(c).__name__, times)
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            scrape_ms(client, 20)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        target = percentile(sorted(warm), 0.99)
        print(
            f"target p99 < 50 ms (full set, warm): p50 {percentile(sorted(warm), 0.5):.2f} ms, "
            f"p99 {target:.2f} ms: {'MET' if target < 50 else 'MISSED'}"
        )
        metrics_store.client().flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())
