"""manage.py reconcile: compare the broker's books with ours now (the on-demand runbook)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Account
from apps.brokers.models import ReconciliationOutcome, ReconciliationTrigger
from apps.brokers.services.reconcile import reconcile_account
from apps.core.cli import cli_actor


class Command(BaseCommand):
    help = (
        "Reconcile positions, open orders, fills and cash of each account (or --account NAME) "
        "with its broker. Fills the broker reports are applied (each once); orders whose ack "
        "was lost are settled; anything that still differs is recorded as a discrepancy, "
        "trading is PAUSED and an alert raised. Exit code: 0 clean, 1 discrepancies, "
        "2 broker unreachable."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--account", help="only this account (by name)")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        accounts = Account.objects.order_by("id")
        if options["account"]:
            accounts = accounts.filter(name=options["account"])
            if not accounts.exists():
                names = ", ".join(Account.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"no account named {options['account']!r} (accounts: {names})")
        worst = 0
        actor = cli_actor()
        for account in accounts:
            run = reconcile_account(
                account=account,
                trigger=ReconciliationTrigger.COMMAND,
                actor=actor,
                purpose="control",
            )
            line = (
                f"{account.name} ({account.broker}): {run.outcome} — {run.orders_checked} orders, "
                f"{run.positions_checked} positions, {run.fills_applied} fills applied, "
                f"{run.orders_settled} orders settled, {run.discrepancies_found} discrepancies"
            )
            if run.outcome == ReconciliationOutcome.CLEAN:
                self.stdout.write(self.style.SUCCESS(line))
            elif run.outcome == ReconciliationOutcome.DISCREPANCIES:
                worst = max(worst, 1)
                self.stdout.write(self.style.ERROR(line))
                for d in run.discrepancies_seen.all():
                    self.stdout.write(f"  - [{d.kind}] {d.detail}")
                self.stdout.write(
                    "  trading is paused; resolve them on the panel's reconciliation page"
                )
            else:
                worst = 2
                self.stdout.write(self.style.ERROR(f"{line}: {run.error}"))
        if worst:
            raise SystemExit(worst)
