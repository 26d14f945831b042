"""Runbook 6.2: PAUSE, wait for working orders (5 min), stop the engine."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.core.cli import cli_actor, exclusive
from apps.ops.exceptions import OpsError
from apps.ops.pidfile import engine_pid
from apps.ops.services.runbooks import shutdown_graceful, working_orders
from apps.risk.services.modes import system_mode_get


class Command(BaseCommand):
    help = (
        "Graceful shutdown (runbook 6.2): set PAUSE, wait up to --timeout seconds (default "
        "SHUTDOWN_ORDER_TIMEOUT_SECONDS, 300) for working orders to finish, report what is left, "
        "then SIGTERM the engine through ENGINE_PIDFILE (it finishes its bar and stops); exit 1 "
        "when an order is still working or the engine did not stop. Then "
        "stop the application containers, then the infrastructure (docs/runbooks.md). Dry run "
        "unless --execute."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reason", default="graceful shutdown", help="audit reason")
        parser.add_argument(
            "--timeout", type=float, default=None, help="seconds to wait for orders"
        )
        parser.add_argument("--execute", action="store_true", help="act; without it, a dry run")

    def handle(self, *args: Any, **options: Any) -> None:
        timeout = (
            settings.SHUTDOWN_ORDER_TIMEOUT_SECONDS
            if options["timeout"] is None
            else options["timeout"]
        )
        if timeout < 0:
            raise CommandError("--timeout must be >= 0")
        if not options["execute"]:
            orders = working_orders()
            pid = engine_pid()
            self.stdout.write(
                f"would: set PAUSE (now {system_mode_get().value.upper()}), wait up to {timeout:g} s "
                f"for {len(orders)} working order(s), SIGTERM the engine "
                f"({'pid ' + str(pid) if pid else 'none running'})"
            )
            raise CommandError("This was a dry run. Pass --execute to apply.")
        bar = tqdm(desc="working orders", unit="poll", disable=options["verbosity"] < 1)

        def progress(left: int) -> None:
            bar.set_postfix_str(f"{left} left")
            bar.update(1)

        try:
            with exclusive("shutdown_graceful"):
                report = shutdown_graceful(
                    actor=cli_actor(), reason=options["reason"], timeout=timeout, progress=progress
                )
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        finally:
            bar.close()
        self.stdout.write(f"mode: {report.paused}")
        self.stdout.write(f"waited {report.waited_seconds} s for working orders")
        if report.orders_left:
            self.stdout.write(f"still working ({len(report.orders_left)}):")
            for line in report.orders_left:
                self.stdout.write(f"  {line}")
        else:
            self.stdout.write("no working orders left")
        self.stdout.write(f"engine: {report.engine}")
        if not report.complete:
            # Exit 1: a script (the deploy) must not go on to stop the containers.
            left = []
            if report.orders_left:
                left.append(f"{len(report.orders_left)} order(s) still working")
            if not report.engine_stopped:
                left.append("the engine is still running")
            raise CommandError(
                f"shutdown not complete: {' and '.join(left)}. Trading is paused; check the "
                "orders at the broker (cancel them, or wait and run shutdown_graceful again), "
                "then stop the containers (docs/runbooks.md, 6.2)"
            )
        self.stdout.write("next: stop the application containers, then the infrastructure")
