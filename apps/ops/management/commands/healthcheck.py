"""The startup runbook's checks (6.1): one line per check, exit 1 if any fails."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from apps.ops import health


class Command(BaseCommand):
    help = (
        "Check database, Redis, broker connection (paper: always ok), data feed freshness "
        "(DATA_FEED_STALE_SECONDS), system mode (NORMAL or OBSERVATION), Celery workers "
        "(inspect ping) and beat (its heartbeat). One line per check; exit 0 when none fails "
        "(warnings allowed), 1 otherwise. Same checks as GET /health/ready."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        checks = health.health_checks()
        for c in checks:
            self.stdout.write(f"{c.status.upper():4} {c.name:10} {c.detail}")
        status = health.overall(checks)
        self.stdout.write(f"overall: {status}")
        if status == health.FAIL:
            sys.exit(1)
