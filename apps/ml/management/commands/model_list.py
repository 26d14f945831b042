"""List registered model versions with their held-out metrics."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "List model versions (newest first): status, held-out log loss, Brier, ECE, AUC, backtest P&L, who promoted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status", choices=["candidate", "active", "retired"], help="only this status"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.ml.selectors import model_version_list

        rows = model_version_list(status=options["status"])
        if not rows:
            self.stdout.write("no model versions; train one with manage.py train --data FILE")
            return
        self.stdout.write(
            f"{'version':<28} {'status':<9} {'algo':<6} {'logloss':>8} {'brier':>7} {'ece':>6} "
            f"{'ece_unc':>7} {'auc':>6} {'bt_pnl':>9}  promoted"
        )
        for mv in rows:
            m = mv.metrics

            def f(key: str, fmt: str, m: dict = m) -> str:
                v = m.get(key)
                return format(v, fmt) if isinstance(v, int | float) else "-"

            promoted = f"{mv.promoted_by} {mv.promoted_at:%Y-%m-%d %H:%M}" if mv.promoted_at else ""
            self.stdout.write(
                f"{mv.version:<28} {mv.status:<9} {mv.algorithm:<6} {f('log_loss', '8.5f')} "
                f"{f('brier', '7.5f')} {f('ece', '6.4f')} {f('ece_uncalibrated', '7.4f')} "
                f"{f('auc', '6.4f')} {f('backtest_pnl', '9.2f')}  {promoted}"
            )
