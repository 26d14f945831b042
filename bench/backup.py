"""Backup and restore of a year of 1-minute bars for 10 instruments (5,256,000 rows).

Usage::

    ENVIRONMENT=test .venv/bin/python scripts/services.py test -- .venv/bin/python bench/backup.py [--days 365]

Sets itself up: a throwaway database it creates on DATABASE_URL's server (the one
DATABASE_URL names if it does not exist yet, else ``<name>_bench_backup_<hex>``), migrated,
filled with COPY: 10 instruments x 525,600 one-minute bars made by repeating the real recorded
bars of the sample files (``--sample-dir`` or ``BENCH_SAMPLE_DIR``, default ``data/sample``:
Coinbase BTC/ETH/LTC-USD) with shifted timestamps.
Then, timed, with the sizes:

- baseline: ``COPY marketdata_bar TO STDOUT`` (every row read out, nothing written);
- ``backup_create`` (PostgreSQL only: the Redis RDB is another server's work), split into the
  snapshot's row counts + content checksums of the key tables and the pg_dump;
- ``backup_restore_test``: restore into a temporary database + the same checksums, dropped;
- ``backup_restore``: pg_restore --clean into the bench database itself (mode PAUSE).

The database is dropped at the end (``--keep`` keeps it). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import (  # noqa: E402
    SAMPLE_DIR_DEFAULT,
    SAMPLE_DIR_ENV,
    bench_database,
    data_dir,
    require_data,
)

START = datetime(2025, 1, 1, tzinfo=UTC)


def mib(n: float) -> str:
    return f"{n / 1048576:,.1f} MiB"


def sample_rows(paths: list[Path]) -> list[list[tuple[str, str, str, str, str]]]:
    out = []
    for path in paths:
        with path.open() as f:
            out.append(
                [
                    (r["open"], r["high"], r["low"], r["close"], r["volume"])
                    for r in csv.DictReader(f)
                ]
            )
    return out


def fill(conn, minutes: int, sample: list[Path], instruments: int = 10) -> int:
    """COPY ``instruments`` x ``minutes`` bars; returns the row count."""
    series = sample_rows(sample)
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


@contextlib.contextmanager
def backup_folder() -> Iterator[Path]:
    """A temporary BACKUP_DIR for the run, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tradebot-bench-backup-") as tmp:
        os.environ["BACKUP_DIR"] = tmp
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--sample-dir",
        type=Path,
        metavar="DIR",
        help="the recorded *.csv bars repeated into the table "
        f"(default: ${SAMPLE_DIR_ENV}, else {SAMPLE_DIR_DEFAULT})",
    )
    args = parser.parse_args()
    sample_dir, _ = data_dir(args.sample_dir, SAMPLE_DIR_ENV, SAMPLE_DIR_DEFAULT)
    sample = sorted(sample_dir.glob("*.csv"))
    require_data(sample or [sample_dir / "*.csv"], f"--sample-dir DIR or {SAMPLE_DIR_ENV}")
    os.environ.setdefault("ENVIRONMENT", "test")
    import psycopg

    with (
        backup_folder(),  # BACKUP_DIR must be set before the settings are read
        bench_database("backup", keep=args.keep) as bench_url,
    ):
        minutes = args.days * 24 * 60
        t0 = time.monotonic()
        with psycopg.connect(bench_url) as conn:
            rows = fill(conn, minutes, sample)
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

        from apps.ops import backup as bk
        from apps.ops.services.backups import backup_create
        from apps.ops.services.restore import backup_restore, backup_restore_test
        from apps.risk.domain.modes import SystemMode
        from apps.risk.services.modes import system_mode_set

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


if __name__ == "__main__":
    main()
