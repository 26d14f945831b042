"""Websocket fan-out: group names and the one place that calls group_send.

Events are JSON dicts ``{"type": "<topic>.<event>", "payload": {...}}``; the panel
consumer forwards them to the browser. Broadcasts are scheduled on commit so a
browser never sees a state that was rolled back, and they run on one background
event loop per process (one Redis connection pool, reused), fire-and-forget: a
slow or dead Redis costs a logged warning, never a trading delay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from concurrent.futures import Future
from typing import Any

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

GROUP_PANEL = "panel.overview"

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    """Decimals and datetimes as strings (a Decimal keeps its exact digits)."""
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _lock:
        # A forked child (Celery prefork) does not inherit the thread: start its own.
        if _loop is None or _loop_pid != os.getpid() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="realtime-broadcast", daemon=True
            )
            thread.start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        logger.warning("panel broadcast failed: %s", exc)


def broadcast_now(group: str, event_type: str, payload: dict[str, Any]) -> Future[Any] | None:
    """Send one event to a group now; returns the future (tests may wait on it)."""
    layer = get_channel_layer()
    if layer is None:
        return None
    message = {"type": event_type, "payload": jsonable(payload)}
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _background_loop())
    future.add_done_callback(_log_failure)
    return future


def broadcast(group: str, event_type: str, payload: dict[str, Any]) -> None:
    """Broadcast after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast_now(group, event_type, payload))
