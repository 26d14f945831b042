"""The panel's websocket: a read-only push pipe from the channel layer to the browser.

Events are sent to ``GROUP_PANEL`` by ``apps.core.realtime`` as
``{"type": "<topic>.<event>", "payload": {...}}``; Channels dispatches them to the
handler named after the event with "." replaced by "_", and each handler forwards
``{"type": <event>, "payload": <payload>}`` to the browser unchanged. Nothing the
browser sends is acted on: commands go over HTTP POST (CSRF, permissions, audit).

Async on purpose (STYLE.md 9 prefers sync consumers unless the code is async-native):
this consumer touches no database per event (the user, its OTP device and the session
limits are resolved by apps.panel.ws_auth before it runs) and only talks to the channel
layer, which is async. A sync consumer pays a thread hop per event and per client:
with 200 clients at 4 updates a second that was the p99 of bench/ws_fanout.py.

The login can end while the socket is open, so the socket ends with it (close 4401):
- at logout, at once: ``apps.panel.signals`` sends "session.ended" to the session's
  group (``ws_auth.session_group``), which every socket of that session joined;
- at the session's idle or absolute limit, a password change, the user losing staff,
  or a logout the signal did not reach (another process's failure, a deleted session
  row): every ``PANEL_WS_SESSION_CHECK_SECONDS`` (30 s) each socket re-reads its
  session (``ws_auth.session_end_reason``, one thread hop and two queries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from apps.core.access import is_verified_staff
from apps.core.realtime import GROUP_PANEL
from apps.panel.ws_auth import session_end_reason, session_group

logger = logging.getLogger(__name__)

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
    "alert.raised",
)


# channels_redis gives each layer a redis-py pool of at most 100 connections that raises
# (not waits) when exhausted; hundreds of browsers (re)connecting at once would each hold
# one for group_add. Bound the concurrent group operations per event loop instead.
GROUP_OPS_IN_FLIGHT = 16
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _group_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(GROUP_OPS_IN_FLIGHT)
    return slot


class PanelConsumer(AsyncJsonWebsocketConsumer):
    joined = False
    session_key: str | None = None
    user_id: Any = None
    _watch: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        # apps.panel.ws_auth set user.is_verified() from the session (django_otp) and
        # treats a session past its 12 h / 30 min limits as anonymous.
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not getattr(user, "is_verified", lambda: False)():
            # Logged in with the password only: the second factor is missing.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not is_verified_staff(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        self.user_id = user.pk
        if not self.session_key:  # ws_auth let no session-less user through; be sure
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        async with _group_slot():
            await self.channel_layer.group_add(GROUP_PANEL, self.channel_name)
            await self.channel_layer.group_add(session_group(self.session_key), self.channel_name)
        self.joined = True
        await self.accept()
        self._watch = asyncio.create_task(self._session_watch())

    async def disconnect(self, code: int) -> None:
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self._watch = None
        if self.joined:
            self.joined = False
            async with _group_slot():
                await self.channel_layer.group_discard(GROUP_PANEL, self.channel_name)
                if self.session_key:
                    await self.channel_layer.group_discard(
                        session_group(self.session_key), self.channel_name
                    )

    async def _session_watch(self) -> None:
        """Re-read the session every PANEL_WS_SESSION_CHECK_SECONDS; close when it ended."""
        interval = float(settings.PANEL_WS_SESSION_CHECK_SECONDS)
        while True:
            await asyncio.sleep(interval)
            try:
                reason = await database_sync_to_async(session_end_reason)(
                    self.session_key, self.user_id
                )
            except Exception:  # noqa: BLE001 - a DB hiccup: check again next time
                logger.warning("panel websocket: session check failed", exc_info=True)
                continue
            if reason is not None:
                await self._end(reason)
                return

    async def _end(self, reason: str) -> None:
        logger.info("panel websocket closed: %s (user %s)", reason, self.user_id)
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def session_ended(self, event: dict[str, Any]) -> None:
        """ "session.ended" from apps.panel.signals: this session logged out."""
        await self._end(str(event.get("payload", {}).get("reason", "logged out")))

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        # No writes over the websocket; do not even parse what the browser sends.
        return

    async def _forward(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["type"], "payload": event.get("payload", {})})

    # One handler per event of docs/domain-contract.md "Realtime events" and
    # docs/risk-contract.md ("alert.raised").
    async def equity_updated(self, event: dict[str, Any]) -> None:
        await self._forward(event)

    async def positions_updated(self, event: dict[str, Any]) -> None:
        await self._forward(event)

    async def decision_created(self, event: dict[str, Any]) -> None:
        await self._forward(event)

    async def order_updated(self, event: dict[str, Any]) -> None:
        await self._forward(event)

    async def fill_created(self, event: dict[str, Any]) -> None:
        await self._forward(event)

    async def mode_changed(self, event: dict[str, Any]) -> None:
        await self._forward(event)

    async def feed_updated(self, event: dict[str, Any]) -> None:
        await self._forward(event)

    async def alert_raised(self, event: dict[str, Any]) -> None:
        await self._forward(event)
