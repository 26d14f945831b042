"""The feeds' clock from settings: real time, or (dev/test) an accelerated market clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.engine.feeds.base import scaled_clock, utcnow


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def stop_wait(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(max(0.0, seconds))


def feed_timing() -> tuple[Callable[[], datetime], Callable[[threading.Event, float], bool]]:
    """(clock, wait) for live feeds: the wall clock, unless ENGINE_FEED_TIME_ORIGIN is set,
    which only a run against fake venues on this machine may do (never prod)."""
    origin = settings.ENGINE_FEED_TIME_ORIGIN
    if not origin:
        return utcnow, stop_wait
    kraken = urlsplit(settings.KRAKEN_API_URL).hostname or "api.kraken.com"
    venues_faked = _loopback(kraken) and _loopback(settings.IBKR_HOST)
    if settings.ENVIRONMENT.value == "prod" or not venues_faked:
        raise ImproperlyConfigured(
            "ENGINE_FEED_TIME_ORIGIN runs the feeds on an accelerated clock, for runs against "
            "fake venues on this machine only (KRAKEN_API_URL and IBKR_HOST on loopback, "
            f"never prod): unset it in {settings.ENVIRONMENT.value}"
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
