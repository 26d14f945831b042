"""One ib_async connection per (host, port, client id) of a process, on its own event loop.

Every ``IbkrVenue`` of the process shares it (see the package docstring). It also keeps
what TWS reports outside any request: connectivity (1100, 1101, 1102), system errors,
errors per order id, and the status text of completed orders; and counts the messages
ib_async could not decode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ib_async import IB
from ib_async.order import Order as IbOrder

from apps.trading.venues.ibkr.errors import (
    CONNECTIVITY_LOST,
    NOTICE_CODES,
    RESTORED_DATA_KEPT,
    RESTORED_DATA_LOST,
)
from apps.trading.venues.metrics import BROKER_MALFORMED_MESSAGES

logger = logging.getLogger(__name__)

BROKER = "ibkr"

# TWS refuses more than 50 API messages a second (error 100, then a disconnect): ib_async
# holds back the 46th message in any 1 s window until the window frees up. Stated here
# rather than left to the library default because it decides the order path's tail: an
# order sent beyond 45 messages a second waits (up to a second) before it leaves.
MAX_MESSAGES_PER_INTERVAL = 45
MESSAGE_INTERVAL_SECONDS = 1.0

_T = TypeVar("_T")


class _CountingLogger(logging.LoggerAdapter):
    """ib_async's decoder logger: what it logs at ERROR is a message it could not decode."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.ERROR:
            BROKER_MALFORMED_MESSAGES.labels(broker=BROKER).inc()
        super().log(level, msg, *args, **kwargs)


class IbkrSession:
    """One ib_async connection with its own event loop, shared by every IbkrVenue."""

    def __init__(self, host: str, port: int, client_id: int) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.lock = threading.RLock()
        self.account = ""
        self.connecting = False
        self.link_lost = False  # TWS reported 1100 and no restore since
        self.system_error = ""  # the last TWS error not about a request (e.g. 326 id in use)
        self.order_errors: dict[int, list[tuple[int, str]]] = defaultdict(list)
        self.completed_status: dict[int, str] = {}  # permId -> IB's completedStatus text
        with self.on_loop():
            self.ib = IB()
        self.ib.RaiseRequestErrors = True
        self.ib.client.MaxRequests = MAX_MESSAGES_PER_INTERVAL
        self.ib.client.RequestsInterval = MESSAGE_INTERVAL_SECONDS
        self.ib.errorEvent += self._on_error
        # Set whenever bytes from TWS were handled or the socket closed: what a wait for an
        # answer wakes on (see ``wait_for_tws``).
        self.tws_activity = asyncio.Event()
        self.ib.client.conn.hasData += self._on_socket_activity
        self.ib.client.conn.disconnected += self._on_socket_activity
        decoder = self.ib.client.decoder
        decoder.logger = _CountingLogger(decoder.logger, {})
        # An exception in the socket handler itself (before the decoder) is emitted here.
        self.ib.client.conn.hasData.error_event += self._on_socket_data_error
        wrapper = self.ib.wrapper
        original_completed = wrapper.completedOrder

        def completed_order(contract: Any, order: IbOrder, state: Any) -> None:
            # ib_async drops the OrderState of completed orders; keep IB's reason text.
            self.completed_status[order.permId] = state.completedStatus or ""
            original_completed(contract, order, state)

        wrapper.completedOrder = completed_order

    @contextmanager
    def on_loop(self) -> Iterator[None]:
        """Make this session's loop the thread's current one (ib_async and eventkit
        look it up through the policy), and put back whatever was there."""
        try:
            previous = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            previous = None
        asyncio.set_event_loop(self.loop)
        try:
            yield
        finally:
            asyncio.set_event_loop(previous)

    def run(self, fn: Callable[[], Awaitable[_T]], timeout: float) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "IbkrVenue is synchronous: call it from a thread without a running event "
                "loop (a worker, or sync_to_async), not from async code"
            )
        with self.on_loop():
            return self.loop.run_until_complete(asyncio.wait_for(fn(), timeout))

    def pump(self) -> None:
        """Let the loop read what the socket has buffered since the last call."""

        async def two_turns() -> None:
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        self.run(two_turns, 1)

    async def wait_for_tws(self, timeout: float) -> bool:
        """Wait until ib_async has handled the next bytes from TWS (or the socket closed);
        False after ``timeout`` seconds without any.

        Every wait for an answer (ack, cancel) is a loop of "check the state, then this":
        it wakes on the data itself, not on a polling interval (a 5 ms poll used to add
        ~5 ms to every order's ack). The caller must check its condition right before
        calling: nothing can be handled between that check and the clear below, since
        both run in one step of the loop.
        """
        self.tws_activity.clear()
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(self.tws_activity.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _on_socket_activity(self, *_args: Any) -> None:
        # Slots after ib_async's own on the same events: the data is decoded by now.
        self.tws_activity.set()

    def connected(self) -> bool:
        return self.ib.isConnected()

    def close(self) -> None:
        with self.lock, self.on_loop():
            self.ib.disconnect()
            self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def _on_error(self, req_id: int, code: int, message: str, _contract: Any) -> None:
        if code == CONNECTIVITY_LOST:
            self.link_lost = True
            logger.warning("IBKR %s: TWS lost its connection to IB (1100): %s", self.port, message)
        elif code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
            self.link_lost = False
            logger.warning("IBKR %s: connectivity restored (%s): %s", self.port, code, message)
            if code == RESTORED_DATA_LOST and self.account and self.ib.client.isConnected():
                # Subscriptions are gone with the data; orders, fills and positions are
                # asked again by every call, the account stream is re-subscribed here.
                self.ib.client.reqAccountUpdates(True, self.account)
        elif req_id < 0:
            if code not in NOTICE_CODES:
                self.system_error = f"IBKR {code}: {message}"
        else:
            if len(self.order_errors) > 5000:  # bounded: oldest order ids first
                for key in sorted(self.order_errors)[:1000]:
                    del self.order_errors[key]
            self.order_errors[req_id].append((code, message))

    def _on_socket_data_error(self, _source: Any, error: Exception) -> None:
        BROKER_MALFORMED_MESSAGES.labels(broker=BROKER).inc()
        logger.error("IBKR %s: socket data could not be handled: %r", self.port, error)
        # ib_async stops at the bad message; the messages after it in the same read stay
        # in its buffer until TWS sends again, which may be never (during the handshake
        # the client then waits for replies it already has). Hand them over now.
        self.loop.call_soon(self.ib.client.conn.hasData.emit, b"")


_SESSIONS: dict[tuple[str, int, int], IbkrSession] = {}
_FORKED: list[IbkrSession] = []  # inherited from a parent process: never used, never closed
_SESSIONS_LOCK = threading.Lock()


def _session(host: str, port: int, client_id: int, *, create: bool) -> IbkrSession | None:
    key = (host, port, client_id)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is not None and session.pid != os.getpid():
            # The socket belongs to the parent: closing it here would shut it there.
            _FORKED.append(_SESSIONS.pop(key))
            session = None
        if session is None and create:
            session = _SESSIONS[key] = IbkrSession(host, port, client_id)
        return session


def sessions_close_all() -> None:
    """Disconnect every session of this process (tests, worker shutdown)."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for session in sessions:
        session.close()
