"""Shared bits of the ML commands: one-line errors, the CLI actor, a tqdm stage bar."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.management.base import CommandError


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "cli:unknown"


def one_line(exc: Exception) -> CommandError:
    return CommandError(getattr(exc, "message", str(exc)).splitlines()[0])


class StageBar:
    """A tqdm bar over the training stages (folds, held-out backtest, saving)."""

    def __init__(self, total: int, disabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="train", unit="step", file=sys.stderr, disable=disabled)

    def __call__(self, stage: str) -> Any:
        self.bar.set_postfix_str(stage)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
