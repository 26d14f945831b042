"""The feeds' clock from settings: real time, or (dev/test) an accelerated market clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.engine.feeds.base import scaled_clock, utcnow


def stop_wait(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(max(0.0, seconds))


def feed_timing() -> tuple[Callable[[], datetime], Callable[[threading.Event, float], bool]]:
    """(clock, wait) for live feeds: the wall clock, unless ENGINE_FEED_TIME_ORIGIN is set
    (dev/test only: staging and prod always run on real time)."""
    origin = settings.ENGINE_FEED_TIME_ORIGIN
    if not origin:
        return utcnow, stop_wait
    if settings.ENVIRONMENT.is_deployed:
        raise ImproperlyConfigured(
            "ENGINE_FEED_TIME_ORIGIN is for dev/test runs against a fake venue: unset it in "
            f"{settings.ENVIRONMENT.value}"
        )
    try:
        start = datetime.fromisoformat(origin)
    except ValueError:
        raise ImproperlyConfigured(
            f"ENGINE_FEED_TIME_ORIGIN={origin!r} is not an ISO time like 2018-04-04T06:00:00Z"
        ) from None
    if start.tzinfo is None:
        raise ImproperlyConfigured(f"ENGINE_FEED_TIME_ORIGIN={origin!r} needs a zone (Z)")
    return scaled_clock(start, settings.ENGINE_FEED_TIME_ORIGIN_AT, settings.ENGINE_FEED_TIME_SCALE)
