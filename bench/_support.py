"""What the benchmarks share: a throwaway migrated database, Django set up on it, the
Redis URL of a bench's own Redis database, where the input data is, percentiles and one
printed row per figure.

    with bench_database("x") as url:
        ...  # django is set up on a database this run created and migrated; dropped afterwards

The database rule (bench/README.md, "Databases"): DATABASE_URL names the server *and* the
database. If that database does not exist, the bench creates it, uses it and drops it at
the end. If it exists, the bench never touches it (no migrate, no flush, no drop): it
creates ``<name>_bench_<tag>_<random>`` on the same server instead and drops only that.
A bench drops nothing but the database it created in the same run.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tradebot_bench"
PG_NAME_MAX = 63  # PostgreSQL truncates longer identifiers

# Input data: the shared data set lives beside the repository (../shared/data), the sample
# bars in it (data/sample). Each can be moved with an option or an environment variable.
SHARED_DATA_ENV = "BENCH_SHARED_DATA"
SHARED_DATA_DEFAULT = REPO.parent / "shared" / "data"
SAMPLE_DIR_ENV = "BENCH_SAMPLE_DIR"
SAMPLE_DIR_DEFAULT = REPO / "data" / "sample"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def row(label: str, values_ms: list[float], digits: int = 1) -> None:
    v = sorted(values_ms)
    w = 7 + digits
    print(
        f"  {label:<52} n={len(v):>4}  p50={percentile(v, 0.5):>{w}.{digits}f} ms  "
        f"p99={percentile(v, 0.99):>{w}.{digits}f} ms  max={v[-1]:>{w}.{digits}f} ms"
    )


def redis_db_url(url: str, db: int) -> str:
    """``url`` with its database number replaced (benches use their own Redis database)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


# --------------------------------------------------------------------------- input data


def data_dir(option: Path | None, env_var: str, default: Path) -> tuple[Path, bool]:
    """The folder from the command-line option, else ``$env_var``, else ``default``; and
    whether it was given explicitly (option or environment) rather than defaulted."""
    if option is not None:
        return option.expanduser().absolute(), True
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser().absolute(), True
    return default, False


def require_data(paths: list[Path], how: str) -> None:
    """Exit with status 2 and a message naming the option / variable when a file is missing."""
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        shown = ", ".join(str(p) for p in missing) or "no files"
        print(
            f"bench: input data not found: {shown}\n  point the bench at it with {how}",
            file=sys.stderr,
        )
        sys.exit(2)


# --------------------------------------------------------------------------- database


def database_name(url: str) -> str:
    """The database name of a postgres:// URL."""
    return unquote(urlsplit(url).path.lstrip("/"))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query, ""))


def _admin_connect(url: str):  # noqa: ANN202
    """An autocommit connection to a maintenance database of ``url``'s server."""
    import psycopg

    error: Exception | None = None
    for maintenance in ("postgres", "template1"):
        try:
            return psycopg.connect(_with_database(url, maintenance), autocommit=True)
        except psycopg.OperationalError as exc:
            error = exc
    raise error  # type: ignore[misc]


def _exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the ``finally`` that drops the database runs."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


@contextlib.contextmanager
def throwaway_database(tag: str, *, keep: bool = False) -> Iterator[str]:
    """Create a database on DATABASE_URL's server that this run owns; yield its URL; drop it
    afterwards (unless ``keep``). Only a database this function created is ever dropped.

    The name is DATABASE_URL's database name when no such database exists yet; otherwise
    that database is left alone and ``<name>_bench_<tag>_<8 hex>`` is created instead.
    """
    from psycopg import errors, sql

    url = os.environ.get("DATABASE_URL")
    if not url:
        url = DEFAULT_DATABASE_URL
        print(f"DATABASE_URL not set: using {url}")
    wanted = database_name(url) or "tradebot_bench"
    _exit_on_sigterm()
    with _admin_connect(url) as conn:
        name = wanted[:PG_NAME_MAX]
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            name = f"{wanted[:30]}_bench_{tag[:12]}_{secrets.token_hex(4)}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"database {wanted} exists: left untouched; this run created {name}")
        else:
            print(f"database {name} created (named by DATABASE_URL)")
    try:
        yield _with_database(url, name)
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if keep:
            print(f"database {name} kept (drop it by hand when done)")
        else:
            with _admin_connect(url) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            print(f"database {name} dropped")


@contextlib.contextmanager
def bench_database(tag: str, *, keep: bool = False) -> Iterator[str]:
    """``throwaway_database``, migrated, with Django set up on it (DATABASE_URL pointed at it)."""
    os.environ.setdefault("ENVIRONMENT", "test")
    with throwaway_database(tag, keep=keep) as bench:
        env = {**os.environ, "DATABASE_URL": bench}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            env=env,
            check=True,
        )
        print(f"database {database_name(bench)} migrated in {time.monotonic() - t0:.1f} s")
        os.environ["DATABASE_URL"] = bench
        import django

        from tradebot.env import setup_settings_module

        setup_settings_module()
        django.setup()
        yield bench


class Worker:
    """``celery -A tradebot worker -Q execution -P solo`` as a subprocess."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.hostname = f"bench-{uuid.uuid4().hex[:8]}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, app, timeout: float = 30.0) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    os.environ.get("BENCH_WORKER_APP", "tradebot"),
                    "worker",
                    "-Q",
                    "execution",
                    "-P",
                    "solo",
                    "-l",
                    "INFO",
                    "-n",
                    self.hostname,
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}):\n{self.tail()}")
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        self.stop()
        raise RuntimeError(f"worker did not answer ping in {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
