"""The engine's healthcheck (the compose ``engine`` service): bars flowing, decisions being made."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from apps.engine.live import HEARTBEAT_KEY
from apps.engine.watchdog import WatchedSeries, series_ages


def engine_health(now: datetime, *, max_heartbeat_age: float) -> tuple[bool, list[str]]:
    """(healthy, lines). Healthy = the engine loop's heartbeat is recent AND every series it
    trades had a bar within its timeframe plus DATA_FEED_STALE_SECONDS (equities only
    judged in their session)."""
    beat = cache.get(HEARTBEAT_KEY)
    if not beat:
        return False, ["FAIL engine: no heartbeat (the engine loop has not run, or Redis lost it)"]
    age = (now - datetime.fromisoformat(beat["at"])).total_seconds()
    lines = [
        f"{'OK' if age <= max_heartbeat_age else 'FAIL'} loop: heartbeat {age:.0f} s ago, "
        f"{beat['bars_processed']} bars processed, {beat['decisions']} trade decisions since start"
    ]
    healthy = age <= max_heartbeat_age
    series = [WatchedSeries(*s.rsplit(":", 1)) for s in beat["series"]]
    if not series:
        return False, [*lines, "FAIL series: the engine trades nothing (no active plan)"]
    limit = settings.DATA_FEED_STALE_SECONDS
    for s in series_ages(series, now):
        if not s.watched:
            lines.append(f"OK   {s.name}: market closed")
        elif s.late_by is None:
            healthy = False
            lines.append(f"FAIL {s.name}: no bar yet")
        elif s.late_by > limit:
            healthy = False
            lines.append(f"FAIL {s.name}: no bar for {s.late_by:.0f} s past due (> {limit} s)")
        else:
            lines.append(f"OK   {s.name}: last bar on time ({max(s.late_by, 0):.0f} s past due)")
    return healthy, lines


class Command(BaseCommand):
    help = (
        "Exit 0 when the engine is healthy: its loop wrote a heartbeat within --max-age "
        "seconds and every series it trades had a bar within its timeframe plus "
        "DATA_FEED_STALE_SECONDS (equities judged only in the US session). Exit 1 "
        "otherwise, one line per series saying which is late. The compose healthcheck."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-age", type=float, default=60.0, help="heartbeat age limit in seconds (60)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        healthy, lines = engine_health(timezone.now(), max_heartbeat_age=options["max_age"])
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"engine: {'healthy' if healthy else 'UNHEALTHY'}")
        if not healthy:
            sys.exit(1)
