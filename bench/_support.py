"""What the database benchmarks share: a throwaway migrated database, Django set up on it,
percentiles and one printed row per figure.

    with bench_database("tradebot_bench_x"):
        ...  # django is set up on a fresh, migrated database; dropped afterwards
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def percentile(sorted_values: list[float], q: float) -> float:
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


def _urls(name: str) -> tuple[str, str]:
    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/tradebot"
    parts = urlsplit(server)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    bench = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    return admin, bench


@contextlib.contextmanager
def bench_database(name: str) -> Iterator[str]:
    """Create ``name`` on DATABASE_URL's server, migrate it, set Django up on it, drop it after."""
    import psycopg

    os.environ.setdefault("ENVIRONMENT", "test")
    admin, bench = _urls(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": bench}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=REPO,
            env=env,
            check=True,
        )
        print(f"database {name} created and migrated in {time.monotonic() - t0:.1f} s")
        os.environ["DATABASE_URL"] = bench
        import django

        from tradebot.env import setup_settings_module

        setup_settings_module()
        django.setup()
        yield bench
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"database {name} dropped")


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
