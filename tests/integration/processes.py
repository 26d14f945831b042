"""Real product processes for end-to-end tests: the engine, beat, on the pytest test database.

``deployed_env`` builds the environment of a staging (or prod) process: a 600-mode env
file with strong secrets, every notification route pointed at loopback, the test database
and Redis, and the live feeds' clock running ``scale`` x real time from ``origin`` (the
same clock the venue fake runs on).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psutil
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.accounts.models import Account
from apps.engine.services import plan_create
from apps.risk.models import RiskLimit
from apps.trading.services.accounts import account_get_or_create
from tests.dbroles import app_role_create
from tests.integration.conftest import ROOT, database_url, redis_url


def process_env(
    tmp: Path,
    *,
    environment: str,
    origin: datetime | None = None,
    origin_at: float | None = None,
    scale: float = 1.0,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {
        **os.environ,
        "ENVIRONMENT": environment,
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": redis_url(),
        "PYTHONUNBUFFERED": "1",
        "ENGINE_PIDFILE": str(tmp / "engine.pid"),
        "LOG_LEVEL": "INFO",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # ENVIRONMENT picks the settings module
    if environment in ("staging", "prod"):
        # Deployed processes connect as the application role (they refuse a superuser or
        # the owner: apps/core/db_roles.py), created with the production grant code.
        env["DATABASE_URL"] = app_role_create().url
        env_file = tmp / f".env.{environment}"
        env_file.write_text(
            "\n".join(
                [
                    f"DJANGO_SECRET_KEY={secrets.token_urlsafe(64)}",
                    f"SALT_KEY={secrets.token_urlsafe(32)}",
                    "DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost",
                    "TELEGRAM_BOT_TOKEN=123456:loopback-only-test-token-abcdefghijkl",
                    "TELEGRAM_CHAT_ID=424242",
                    "TELEGRAM_ALLOWED_USER_IDS=424242",
                    "TELEGRAM_API_URL=http://127.0.0.1:9/bot",
                    "NOTIFY_EMAIL_RECIPIENTS=ops@example.com",
                    "SMTP_SMARTHOST=127.0.0.1:9",
                    f"ALERTMANAGER_WEBHOOK_TOKEN={secrets.token_urlsafe(32)}",
                    f"METRICS_BEARER_TOKEN={secrets.token_urlsafe(32)}",
                    "",
                ]
            )
        )
        env_file.chmod(0o600)
        env["ENV_FILE"] = str(env_file)
    if origin is not None:
        env["ENGINE_FEED_TIME_ORIGIN"] = origin.isoformat()
        env["ENGINE_FEED_TIME_ORIGIN_AT"] = repr(
            origin_at if origin_at is not None else time.time()
        )
        env["ENGINE_FEED_TIME_SCALE"] = repr(scale)
    env.update(extra or {})
    return env


class Process:
    """One product process (``manage.py run_engine``, ``celery beat``) with its log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / f"{name}.log"
        self.starts = 0

    def start(self) -> Process:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, *self.argv],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (finish the bar in progress), SIGKILL if it does not end in time."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def rss_mb(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def engine_process(env: dict[str, str], log_dir: Path, *args: str) -> Process:
    return Process("engine", ["manage.py", "run_engine", *args], env, log_dir)


def beat_process(env: dict[str, str], log_dir: Path) -> Process:
    return Process(
        "beat",
        ["-m", "celery", "-A", "tradebot", "beat", "-l", "INFO", "-s", str(log_dir / "beat-db")],
        env,
        log_dir,
    )


def broker_sync_scheduled() -> None:
    """beat's ``brokers.sync`` every 5 s, as the brokers' migration installs it (a
    transactional test before this one flushed the migration's rows)."""
    every_5s, _ = IntervalSchedule.objects.get_or_create(every=5, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.get_or_create(
        task="brokers.sync",
        defaults={"name": "brokers: sync (test)", "interval": every_5s, "kwargs": "{}"},
    )


def live_plan(*, broker: str, venue: str, instrument: str) -> Account:
    """An account at ``broker`` (100,000 USD, order and position limits) with one active
    sma_cross 3/8 plan on ``instrument`` 1m, its bars from ``venue``: trades within ~40 bars."""
    account = account_get_or_create(
        name=f"{broker}-live", broker=broker, currency="USD", starting_cash=Decimal("100000")
    )
    RiskLimit.objects.update_or_create(
        account=account,
        defaults={"max_order_notional": Decimal(5000), "max_position_notional": Decimal(20000)},
    )
    plan_create(
        account=account,
        venue=venue,
        instrument=instrument,
        timeframe="1m",
        strategy="sma_cross",
        params={"fast": "3", "slow": "8"},
        stake=Decimal("500"),
        actor="test",
    )
    return account
