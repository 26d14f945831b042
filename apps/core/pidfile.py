"""A pid file for the lifetime of a block: long-running processes announce themselves.

The engine writes one (``ENGINE_PIDFILE``) so that ``shutdown_graceful`` can signal it;
the reading side, which checks the pid is still an engine, is in ``apps.ops.pidfile``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def pidfile(path: Path) -> Iterator[Path]:
    """Write this process's pid to ``path`` for the duration of the block, then remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError):
            if int(path.read_text().strip()) == os.getpid():
                path.unlink()
