"""Helpers shared by the runbook commands: the audit actor and a one-at-a-time lock."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Refuse to run while another run of the same runbook holds the lock (same host)."""
    path = Path(settings.BASE_DIR) / "var" / "run" / f"ops-{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CommandError(f"another {name} is running (lock {path})") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
