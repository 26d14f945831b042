"""What the operations services share: the progress callback and the restore guard (trading stopped first)."""

from __future__ import annotations

from collections.abc import Callable

from apps.ops import backup as bk
from apps.ops.exceptions import RestoreRefused
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    return None


def restore_guard(backup: bk.Backup) -> str:
    """Refuse unless trading is paused or stopped; returns the current mode."""
    mode = system_mode_get()
    if mode not in (SystemMode.PAUSE, SystemMode.KILL):
        raise RestoreRefused(
            f"the system is in {mode.value.upper()}: a restore replaces the whole database, "
            "so trading must be stopped first. Run `manage.py pause --reason ... --execute` "
            "(or shutdown_graceful), then restore"
        )
    return mode.value
