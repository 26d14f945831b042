"""Backup and restore of a year of 1-minute bars for 10 instruments (5,256,000 rows).

Usage::

    ENVIRONMENT=test .venv/bin/python scripts/services.py test -- .venv/bin/python bench/backup.py [--days 365]

Sets itself up: a throwaway database ``tradebot_bench_backup`` on DATABASE_URL's server,
migrated, filled with COPY: 10 instruments x 525,600 one-minute bars made by repeating the
real recorded bars of ``data/sample`` (Coinbase BTC/ETH/LTC-USD) with shifted timestamps.
Then, timed, with the sizes:

- baseline: ``COPY marketdata_bar TO STDOUT`` (every row read out, nothing written);
- ``backup_create`` (PostgreSQL only: the Redis RDB is another server's work), split into the
  snapshot's row counts + content checksums of the key tables and the pg_dump;
- ``backup_restore_test``: restore into a temporary database + the same checksums, dropped;
- ``backup_restore``: pg_restore --clean into the bench database itself (mode PAUSE).

The database is dropped at the end. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH_DB = "tradebot_bench_backup"
SAMPLE = sorted((REPO / "data" / "sample").glob("*.csv"))
START = datetime(2025, 1, 1, tzinfo=UTC)


def urls(server_url: str) -> tuple[str, str]:
    p = urlsplit(server_url)
    return (
        urlunsplit((p.scheme, p.netloc, "/postgres", p.query, "")),
        urlunsplit((p.scheme, p.netloc, f"/{BENCH_DB}", p.query, "")),
    )


def mib(n: float) -> str:
    return f"{n / 1048576:,.1f} MiB"


def sample_rows() -> list[list[tuple[str, str, str, str, str]]]:
    out = []
    for path in SAMPLE:
        with path.open() as f:
            out.append(
                [
                    (r["open"], r["high"], r["low"], r["close"], r["volume"])
                    for r in csv.DictReader(f)
                ]
            )
    return out


def fill(conn, minutes: int, instruments: int = 10) -> int:
    """COPY ``instruments`` x ``minutes`` bars; returns the row count."""
    series = sample_rows()
    ids = []
    for i in range(instruments):
        sym = ["BTC-USD", "ETH-USD", "LTC-USD"][i] if i < 3 else f"SYN{i}-USD"
        row = conn.execute(
            "INSERT INTO marketdata_instrument (symbol, base, quote, asset_class, active) "
            "VALUES (%s, %s, 'USD', 'crypto', true) RETURNING id",
            [sym, sym.split("-")[0]],
        ).fetchone()
        ids.append(row[0])
    total = 0
    with conn.cursor() as cur:
        for i, inst in enumerate(ids):
            bars = series[i % len(series)]
            offset = (i * 977) % len(bars)
            with cur.copy(
                "COPY marketdata_bar (instrument_id, timeframe, ts, open, high, low, close, volume) FROM STDIN"
            ) as copy:
                buf = io.StringIO()
                for m in range(minutes):
                    o, h, lo, c, v = bars[(offset + m) % len(bars)]
                    ts = (START + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S+00")
                    buf.write(f"{inst}\t1m\t{ts}\t{o}\t{h}\t{lo}\t{c}\t{v}\n")
                    if m % 50000 == 49999:
                        copy.write(buf.getvalue())
                        buf = io.StringIO()
                copy.write(buf.getvalue())
            total += minutes
    conn.commit()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    os.environ.setdefault("ENVIRONMENT", "test")
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/tradebot"
    admin_url, bench_url = urls(server)
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    env = {**os.environ, "DATABASE_URL": bench_url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    backup_dir = Path(tempfile.mkdtemp(prefix="tradebot-bench-backup-"))
    try:
        minutes = args.days * 24 * 60
        t0 = time.monotonic()
        with psycopg.connect(bench_url) as conn:
            rows = fill(conn, minutes)
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE marketdata_bar")
            table_bytes = conn.execute(
                "SELECT pg_total_relation_size('marketdata_bar')"
            ).fetchone()[0]
        print(
            f"backup bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
            f"{rows:,} bars loaded with COPY in {time.monotonic() - t0:.1f} s; "
            f"table + indexes {mib(table_bytes)}"
        )

        # baseline: every row out with a plain COPY TO
        with psycopg.connect(bench_url) as conn, conn.cursor() as cur:
            t0 = time.monotonic()
            raw = 0
            with cur.copy("COPY marketdata_bar TO STDOUT") as copy:
                for chunk in copy:
                    raw += len(chunk)
            copy_s = time.monotonic() - t0

        os.environ.update({"DATABASE_URL": bench_url, "BACKUP_DIR": str(backup_dir)})
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradebot.settings.test")
        import django

        django.setup()
        from apps.ops import backup as bk
        from apps.ops.services import backup_create, backup_restore, backup_restore_test
        from apps.risk.domain.modes import SystemMode
        from apps.risk.services import system_mode_set

        tables = bk.key_tables()
        with bk.pg_connect() as conn:
            t0 = time.monotonic()
            bk.table_stats(conn, tables)
            stats_s = time.monotonic() - t0
            conn.rollback()

        t0 = time.monotonic()
        result = backup_create(actor="bench", skip_redis=True)
        backup_s = time.monotonic() - t0
        dump_bytes = result.manifest["files"]["postgres"]["bytes"]

        t0 = time.monotonic()
        run = backup_restore_test(actor="bench")
        restore_test_s = time.monotonic() - t0

        system_mode_set(mode=SystemMode.PAUSE, actor="bench", source="cli", reason="bench restore")
        t0 = time.monotonic()
        backup_restore(backup=result.folder, actor="bench")
        restore_s = time.monotonic() - t0

        print(f"{'step':46} {'seconds':>8} {'rows/s':>12} {'size':>12}")
        line = "{:46} {:8.1f} {:>12} {:>12}"
        print(
            line.format(
                "COPY marketdata_bar TO STDOUT (baseline)",
                copy_s,
                f"{rows / copy_s:,.0f}",
                mib(raw),
            )
        )
        print(
            line.format(
                "  key tables: counts + content md5 (in backup)",
                stats_s,
                f"{rows / stats_s:,.0f}",
                "-",
            )
        )
        print(
            line.format(
                "backup_create (snapshot, checksums, pg_dump)",
                backup_s,
                f"{rows / backup_s:,.0f}",
                mib(dump_bytes),
            )
        )
        print(
            line.format(
                "backup_restore_test (temp db + checksums)",
                restore_test_s,
                f"{rows / restore_test_s:,.0f}",
                "-",
            )
        )
        print(
            line.format(
                "backup_restore (--clean, one transaction)",
                restore_s,
                f"{rows / restore_s:,.0f}",
                "-",
            )
        )
        print(
            f"dump is {dump_bytes / raw:.1%} of the COPY text, {dump_bytes / table_bytes:.1%} of the table on disk; "
            f"backup = {backup_s / copy_s:.1f} x the plain COPY; restore_test ok: {run.outcome}"
        )
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)
        if not args.keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
