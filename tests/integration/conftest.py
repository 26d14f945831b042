"""A real Celery ``execution`` worker (subprocess, solo pool) on the pytest-django test database.

The worker is the same command production runs (``celery -A tradebot worker -Q execution``),
pointed at the test database that pytest-django created and at the Redis the tests use.
Tests that use it must see committed data, hence ``transactional_db``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings

from apps.core.queues import CeleryQueue

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def database_url(db: dict[str, Any]) -> str:
    """The URL of a Django database settings dict (the test database at test time)."""
    user = quote(db.get("USER") or "", safe="")
    password = quote(str(db.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or settings.CELERY_BROKER_URL


def purge_execution_queue(queue: str = CeleryQueue.EXECUTION.value) -> int:
    """Drop every message waiting on ``queue`` (stale ones from other runs)."""
    from tradebot.celery import app

    with app.connection_for_write() as conn:
        return conn.default_channel.queue_purge(queue) or 0


class CeleryWorker:
    """One ``celery worker -Q execution -P solo`` subprocess that can be stopped and started again.

    ``queues``: other queues for other tests (e.g. "default" for notification deliveries).
    """

    def __init__(
        self, env: dict[str, str], log_dir: Path, queues: str = CeleryQueue.EXECUTION.value
    ) -> None:
        self.env = env
        self.queues = queues
        self.log_dir = log_dir
        self.hostname = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        from tradebot.celery import app

        assert not self.running, "the worker is already running"
        self._starts += 1
        self.hostname = f"integration-{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = self.log_dir / f"worker-{self._starts}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tradebot",
                "worker",
                "-Q",
                self.queues,
                "-P",
                "solo",
                "-l",
                "INFO",
                "-n",
                self.hostname,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise RuntimeError(f"the celery worker exited with {code}:\n{self.log_tail()}")
                if app.control.ping(destination=[self.hostname], timeout=0.5):
                    return
        except BaseException:
            self.stop()  # never leave an orphan worker consuming other tests' messages
            raise
        self.stop()
        raise RuntimeError(
            f"the celery worker did not answer ping within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Warm shutdown (SIGTERM: finish the current task), SIGKILL if it does not end in time."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-task, no shutdown, no ack (a crash, an OOM kill)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no worker log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def execution_worker(django_db_setup: None, django_db_blocker: Any) -> Iterator[CeleryWorker]:
    """A running execution worker on the test database; stopped (and killed if need be) after the module."""
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": redis_url(),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # ENVIRONMENT picks the settings module
    with tempfile.TemporaryDirectory(prefix="tradebot-worker-") as tmp:
        worker = CeleryWorker(env, Path(tmp))
        purge_execution_queue()
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()
            purge_execution_queue()


@pytest.fixture
def worker(execution_worker: CeleryWorker, transactional_db: None) -> CeleryWorker:
    """The module's worker, running at the start of the test, on committed data."""
    if not execution_worker.running:
        purge_execution_queue()
        execution_worker.start()
    return execution_worker


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.02,
    what: str = "condition",
    worker: CeleryWorker | None = None,
    log: Callable[[], str] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with the worker's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = worker.log_tail() if worker else ""
            more = f"\n--- log ---\n{log()}" if log else ""
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what}\n--- worker log ---\n{tail}"
                + more
            )
        time.sleep(interval)


@pytest.fixture
def log_dir() -> Iterator[Path]:
    """A temporary folder for the logs of the processes a test starts."""
    with tempfile.TemporaryDirectory(prefix="tradebot-live-") as tmp:
        yield Path(tmp)
