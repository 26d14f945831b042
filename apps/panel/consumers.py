"""The panel's websocket: a read-only push pipe from the channel layer to the browser.

Events are sent to ``GROUP_PANEL`` by ``apps.core.realtime`` as
``{"type": "<topic>.<event>", "payload": {...}}``; Channels dispatches them to the
handler named after the event with "." replaced by "_", and each handler forwards
``{"type": <event>, "payload": <payload>}`` to the browser unchanged. Nothing the
browser sends is acted on: commands go over HTTP POST (CSRF, permissions, audit).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer

from apps.core.realtime import GROUP_PANEL

# Close codes in the 4000-4999 range are free for applications; they mirror HTTP 401/403.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403

EVENTS = (
    "equity.updated",
    "positions.updated",
    "decision.created",
    "order.updated",
    "fill.created",
    "mode.changed",
    "feed.updated",
)


class PanelConsumer(JsonWebsocketConsumer):
    joined = False

    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not user.is_staff:
            self.close(code=CLOSE_FORBIDDEN)
            return
        async_to_sync(self.channel_layer.group_add)(GROUP_PANEL, self.channel_name)
        self.joined = True
        self.accept()

    def disconnect(self, code: int) -> None:
        if self.joined:
            async_to_sync(self.channel_layer.group_discard)(GROUP_PANEL, self.channel_name)
            self.joined = False

    def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        # No writes over the websocket; do not even parse what the browser sends.
        return

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        return

    def _forward(self, event: dict[str, Any]) -> None:
        self.send_json({"type": event["type"], "payload": event.get("payload", {})})

    # One handler per event of docs/domain-contract.md "Realtime events".
    def equity_updated(self, event: dict[str, Any]) -> None:
        self._forward(event)

    def positions_updated(self, event: dict[str, Any]) -> None:
        self._forward(event)

    def decision_created(self, event: dict[str, Any]) -> None:
        self._forward(event)

    def order_updated(self, event: dict[str, Any]) -> None:
        self._forward(event)

    def fill_created(self, event: dict[str, Any]) -> None:
        self._forward(event)

    def mode_changed(self, event: dict[str, Any]) -> None:
        self._forward(event)

    def feed_updated(self, event: dict[str, Any]) -> None:
        self._forward(event)
