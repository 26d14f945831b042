"""The quarterly stress test (spec 7.1): every scenario against every account's current book."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.accounts.models import Account
from apps.core.cli import cli_actor, exclusive
from apps.ops.exceptions import OpsError


class Command(BaseCommand):
    help = (
        "Revalue every account's open positions under the stress scenarios - the March 2020 "
        "crash, a flash crash, an overnight gap down, a 4-hour broker outage (sizes measured on "
        "the recorded bars in STRESS_DATA_DIR), a volatility spike and correlation to 1 (from "
        "the historical VaR of the stored bars), a liquidity shock - against the account's risk "
        "limits and the drawdown / daily-loss rules. Stores a report (admin, /ops/stress/), "
        "audited as cli:<user>, recorded as maintenance task stress_test. Read-only for "
        "trading: nothing is sent or changed. Exit 1 when a scenario takes an account beyond "
        "the kill level (RISK_DRAWDOWN_KILL) or wipes it out, so scripts can act on it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--details", action="store_true", help="print every scenario of every account"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.ops.stress import stress_steps, stress_test_run

        bar = tqdm(
            total=stress_steps(Account.objects.count()),
            desc="stress test",
            unit="step",
            disable=options["verbosity"] < 1,
        )

        def progress(what: str) -> None:
            bar.set_postfix_str(what[:40])
            bar.update(1)

        try:
            with exclusive("stress_test"):
                report = stress_test_run(actor=cli_actor(), progress=progress)
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        finally:
            bar.close()
        if options["details"]:
            for account in report.results:
                self.stdout.write(f"\n{account['account']} (equity {account['equity']})")
                for s in account["scenarios"]:
                    self.stdout.write(
                        f"  {s['status'].upper():4} {s['title']:24} loss {s['loss']:>14} "
                        f"drawdown {s['drawdown_after']:>12} {s['mode'] or '-':5} {s['note']}"
                    )
        self.stdout.write(report.summary)
        self.stdout.write(f"report #{report.pk}: /ops/stress/{report.pk}/ (admin: Stress reports)")
        if report.outcome == "fail":
            sys.exit(1)
