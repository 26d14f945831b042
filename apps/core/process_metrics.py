"""CPU and memory of every app process (web, Celery workers, engine), for /metrics.

Only the web process serves /metrics, and the others may live in other containers, so
each non-web process runs a daemon thread that writes a snapshot of itself (psutil: CPU
seconds, RSS, start time) into one Redis hash every ``INTERVAL`` seconds; the web
process's collector (apps.ops.metrics.AppProcessCollector) reads the hash at scrape time,
adds its own snapshot, and ignores entries older than ``STALE_AFTER`` (a process that
died). Start it once per process with ``process_metrics_start(process="engine")``; the
Celery workers start it from a signal (apps.ops.celery_metrics).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import psutil
import redis

from apps.core import metrics_store

logger = logging.getLogger(__name__)

INTERVAL = 10.0
STALE_AFTER = 60.0  # four missed reports: the process is gone
FORGET_AFTER = 3600.0  # entries this old are deleted at scrape (restarts leave old pids)

_started: dict[int, tuple[threading.Thread, threading.Event]] = {}
_lock = threading.Lock()


def snapshot(process: str, proc: psutil.Process | None = None) -> dict[str, Any]:
    """This process's figures now (one /proc read each)."""
    proc = proc or psutil.Process()
    with proc.oneshot():
        cpu = proc.cpu_times()
        return {
            "process": process,
            "pid": proc.pid,
            "host": socket.gethostname(),
            "cpu_seconds": cpu.user + cpu.system,
            "rss_bytes": proc.memory_info().rss,
            "start_time": proc.create_time(),
            "ts": time.time(),
        }


def field(snap: dict[str, Any]) -> str:
    return f"{snap['process']}|{snap['host']}|{snap['pid']}"


def report(process: str) -> bool:
    """Write this process's snapshot now; False (logged) when Redis did not take it."""
    snap = snapshot(process)
    try:
        metrics_store.client().hset(metrics_store.PROCESS_KEY, field(snap), json.dumps(snap))
    except redis.RedisError as exc:
        logger.warning("process metrics not reported: %s", exc)
        return False
    return True


def process_metrics_start(*, process: str, interval: float = INTERVAL) -> threading.Event:
    """Report this process's CPU and RSS every ``interval`` s from a daemon thread (idempotent
    per pid: a forked child starts its own). Setting the returned event stops it (a command
    run in-process, e.g. by a test, must not leave it reporting)."""
    pid = os.getpid()
    with _lock:
        running = _started.get(pid)
        if running is not None and running[0].is_alive():
            return running[1]
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    report(process)
                except Exception:  # a reporter must never die of one bad read
                    logger.exception("process metrics: report failed")
                stop.wait(interval)

        thread = threading.Thread(target=loop, name="process-metrics", daemon=True)
        _started[pid] = (thread, stop)
        thread.start()
        return stop


def read_all(conn: redis.Redis | None = None, now: float | None = None) -> list[dict[str, Any]]:
    """Live processes' latest snapshots; deletes entries older than FORGET_AFTER."""
    conn = conn or metrics_store.client()
    now = time.time() if now is None else now
    live, forget = [], []
    for key, raw in conn.hgetall(metrics_store.PROCESS_KEY).items():
        try:
            snap = json.loads(raw)
            age = now - float(snap["ts"])
        except (ValueError, KeyError, TypeError):
            forget.append(key)
            continue
        if age > FORGET_AFTER:
            forget.append(key)
        elif age <= STALE_AFTER:
            live.append(snap)
    if forget:
        conn.hdel(metrics_store.PROCESS_KEY, *forget)
    return live
