"""Websocket fan-out: group names and the one place that calls group_send.

Events are JSON dicts ``{"type": "<topic>.<event>", ...}``; the panel consumer
forwards them to the browser. Broadcasts are scheduled on commit so a browser
never sees a state that was rolled back. A broadcast failure (Redis down) is
logged and never breaks trading.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

GROUP_PANEL = "panel.overview"


def jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    # Decimals and datetimes as strings (Decimal keeps its exact digits).
    import json

    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def broadcast_now(group: str, event_type: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": event_type, "payload": jsonable(payload)}
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # noqa: BLE001 - the panel must never stop trading
        logger.warning("broadcast of %s to %s failed", event_type, group, exc_info=True)


def broadcast(group: str, event_type: str, payload: dict[str, Any]) -> None:
    """Broadcast after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast_now(group, event_type, payload))
