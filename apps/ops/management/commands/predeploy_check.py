"""The pre-deploy checklist (spec 3.3): exit 1 if any check fails."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from apps.ops import health


class Command(BaseCommand):
    help = (
        "Before a deploy: CI tests passed (CI_LAST_RESULT, else the first word of CI_RESULT_FILE: "
        "success), no critical alert in 24 h, a successful backup under 24 h old, markets closed "
        "(the NYSE calendar: 09:30-16:00 New York, holidays and 13:00 early closes; crypto "
        "never closes: warning), kill "
        "switch reachable (kill_switch_engage importable, mode row lockable). Exit 1 on a failure."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        checks = health.predeploy_checks()
        for c in checks:
            self.stdout.write(f"{c.status.upper():4} {c.name:16} {c.detail}")
        status = health.overall(checks)
        self.stdout.write(f"overall: {status}")
        if status == health.FAIL:
            sys.exit(1)
