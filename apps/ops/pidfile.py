"""The engine's pid file, so shutdown_graceful can stop it with SIGTERM.

run_engine writes it at start and removes it at exit (``apps.core.pidfile.pidfile``); the
engine handles SIGTERM by finishing the bar in progress and stopping. Before
signalling, the pid is checked to still be a run_engine process (a stale file after
a crash must not make us signal whatever process reuses the pid).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
from django.conf import settings

ENGINE_MARK = "run_engine"


def _path() -> Path:
    return Path(settings.ENGINE_PIDFILE)


def engine_pid(path: Path | None = None) -> int | None:
    """The running engine's pid, or None (no file, stale file, or not an engine)."""
    path = path or _path()
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return pid if ENGINE_MARK in cmdline else None


def engine_stop(*, wait: float = 30.0, path: Path | None = None) -> tuple[bool, str]:
    """SIGTERM the engine and wait for it to exit: whether none runs now, and a sentence
    saying what happened."""
    pid = engine_pid(path)
    if pid is None:
        return True, f"no running engine (pid file {path or _path()})"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        if gone:
            return True, f"engine (pid {pid}) stopped"
        time.sleep(0.2)
    return False, f"engine (pid {pid}) got SIGTERM but is still running after {wait:g} s"
