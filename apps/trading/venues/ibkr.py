"""Interactive Brokers through ib_async, to a running TWS or IB Gateway.

The adapter runs inside a long-lived single-threaded worker (Celery, pool solo) and
is called synchronously. It keeps ONE socket per process and per (host, port,
client id) — TWS allows one connection per client id — and reconnects lazily: the
first call after a drop or a refusal tries again, and a call that cannot reach TWS
raises ``VenueTemporaryError``. ``venue_for`` may build a new ``IbkrVenue`` for every
call; they all share that session.

The session owns a private asyncio loop. ib_async is asynchronous underneath; every
call here runs one coroutine on that loop to completion (with a timeout), so socket
messages are processed only while a call runs. That is why nothing is read from
ib_async's caches: every query asks TWS again (open orders, completed orders,
executions, positions, account values), so a message lost during a disconnect or a
TWS "data lost" restore (1101) never leaves a stale answer behind.

Our client_order_id travels as the IB order's ``orderRef``: it comes back in open
orders, completed orders and executions, so ``order_status`` finds an order whose ack
was lost. The broker order id we hand back is IB's ``permId`` (unique per account and
stable across client sessions, unlike the per-client ``orderId``).

Errors: an order refused by IB (201, 202, 103, 110, 404, 434, ...) raises
``VenueRejected`` with IB's code and message; an order IB keeps working despite the
error (404 "held while we locate shares", treated as a warning by ib_async) is
cancelled first, so a REJECTED order is never left working. 502/504, timeouts and
dropped sockets raise ``VenueTemporaryError`` (outcome unknown). 1100 (TWS lost IB)
makes ``connection_state`` DISCONNECTED and refuses to send orders until 1101/1102.
Messages the decoder cannot parse are logged by ib_async, counted in
``broker_malformed_messages_total{broker="ibkr"}``, and skipped: ib_async's decoder
catches every exception per message, and its socket handler's exceptions go to an
event we listen to; neither can end the process.

Equities only: our symbol is the ticker, routed SMART in the instrument's quote
currency. Crypto is refused (``VenueRejected``, code ``unsupported-asset-class``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ib_async import IB, ExecutionFilter, LimitOrder, MarketOrder, Stock
from ib_async.ib import StartupFetch
from ib_async.order import Order as IbOrder
from ib_async.order import OrderStatus as IbStatus
from ib_async.order import Trade
from ib_async.util import UNSET_DOUBLE
from ib_async.wrapper import RequestError

from apps.model.orders import OrderStatus
from apps.model.values import OrderType, Side
from apps.model.venues import (
    BrokerBalance,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    ConnectionState,
    VenueAck,
    VenueConfigurationError,
    VenueError,
    VenueOrder,
    VenueRejected,
    VenueTemporaryError,
)
from apps.trading.venues.metrics import BROKER_MALFORMED_MESSAGES

logger = logging.getLogger(__name__)

BROKER = "ibkr"
PAPER_ACCOUNT_PREFIX = "DU"

# TWS system messages (reqId -1).
CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED_DATA_KEPT = 1102
# "Couldn't connect to TWS" / "Not connected": the outcome of a request is unknown.
TEMPORARY_CODES = frozenset({502, 504})
# Messages about an order that do not refuse it: 202 is IB's confirmation of a cancel
# (a refusal only while we wait for the ack), 399 "order will be placed at the open",
# 2100-2199 warnings ("attribute ignored"), 10167/10311/10349 notices.
NOTICE_CODES = frozenset({399, 10167, 10311, 10349, *range(2100, 2200)})
ORDER_CANCELLED = 202

CANCEL_GRACE_SECONDS = 1.0  # how long cancel() waits for IB to confirm or refuse
COMMISSION_GRACE_SECONDS = 1.0  # commission reports may trail the executions' end
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


class _Session:
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


_SESSIONS: dict[tuple[str, int, int], _Session] = {}
_FORKED: list[_Session] = []  # inherited from a parent process: never used, never closed
_SESSIONS_LOCK = threading.Lock()


def _session(host: str, port: int, client_id: int, *, create: bool) -> _Session | None:
    key = (host, port, client_id)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is not None and session.pid != os.getpid():
            # The socket belongs to the parent: closing it here would shut it there.
            _FORKED.append(_SESSIONS.pop(key))
            session = None
        if session is None and create:
            session = _SESSIONS[key] = _Session(host, port, client_id)
        return session


def sessions_close_all() -> None:
    """Disconnect every session of this process (tests, worker shutdown)."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for session in sessions:
        session.close()


def _dec(value: float | None) -> Decimal | None:
    """IB's float (UNSET_DOUBLE for "none") as a Decimal, via its shortest repr."""
    if value is None or value == UNSET_DOUBLE or math.isnan(value) or math.isinf(value):
        return None
    return Decimal(repr(float(value)))


def _perm_id(trade: Trade) -> int:
    if trade.order.permId:
        return trade.order.permId
    if trade.orderStatus.permId:
        return trade.orderStatus.permId
    for fill in trade.fills:
        if fill.execution.permId:
            return fill.execution.permId
    return 0


def _error_class(code: int, message: str) -> VenueError:
    text = f"IBKR {code}: {message}"
    if code in TEMPORARY_CODES or code == CONNECTIVITY_LOST:
        return VenueTemporaryError(text)
    return VenueRejected(text, code=str(code))


def order_status_map(ib_status: str, *, filled: Decimal, rejected: bool) -> OrderStatus:
    """IB's order status onto ours. ``rejected``: IB refused it (an error or its reason)."""
    if ib_status in (IbStatus.PendingSubmit, IbStatus.ApiPending):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
    if ib_status == IbStatus.PendingCancel:
        return OrderStatus.PENDING_CANCEL
    if ib_status == IbStatus.Filled:
        return OrderStatus.FILLED
    if ib_status in (IbStatus.Cancelled, IbStatus.ApiCancelled):
        return OrderStatus.REJECTED if rejected and filled == 0 else OrderStatus.CANCELED
    if ib_status == IbStatus.Inactive:
        # "received but no longer active because it was rejected or cancelled"
        return OrderStatus.REJECTED if filled == 0 else OrderStatus.CANCELED
    # PreSubmitted, Submitted, ApiUpdate, ValidationError (a warning; still working)
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED


class IbkrVenue:
    """One IB account through TWS / IB Gateway (see the module docstring)."""

    name = BROKER
    # IB confirms a cancel later (ORDER_STATUS Cancelled + 202): PENDING_CANCEL first.
    cancel_is_immediate = False

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str,
        timeout_seconds: float = 10.0,
        require_paper_account: bool = True,
    ) -> None:
        if not host:
            raise VenueConfigurationError("IBKR: host is empty (set IBKR_HOST)")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise VenueConfigurationError(f"IBKR: port {port!r} is not a TCP port (IBKR_PORT)")
        if not isinstance(client_id, int) or client_id < 0:
            raise VenueConfigurationError(
                f"IBKR: client id {client_id!r} must be an integer >= 0 (IBKR_CLIENT_ID)"
            )
        if not account:
            raise VenueConfigurationError(
                "IBKR: account is empty (set IBKR_ACCOUNT, e.g. DU1234567)"
            )
        if not timeout_seconds or timeout_seconds <= 0:
            raise VenueConfigurationError(
                f"IBKR: timeout {timeout_seconds!r} must be > 0 seconds (IBKR_TIMEOUT_SECONDS)"
            )
        self.host = host
        self.port = port
        self.client_id = client_id
        self.account = account
        self.timeout = float(timeout_seconds)
        self.require_paper_account = require_paper_account

    # --- session ------------------------------------------------------------------------

    def connect(self) -> None:
        session = self._ensure()
        with session.lock:
            session.pump()
            if not session.connected():
                raise VenueTemporaryError(f"IBKR {self.host}:{self.port}: connection lost")

    def close(self) -> None:
        """Disconnect this process's session for this host, port and client id."""
        with _SESSIONS_LOCK:
            session = _SESSIONS.pop((self.host, self.port, self.client_id), None)
        if session is not None and session.pid == os.getpid():
            session.close()

    def connection_state(self) -> ConnectionState:
        session = _session(self.host, self.port, self.client_id, create=False)
        if session is None:
            return ConnectionState.DISCONNECTED
        with session.lock:
            if session.connecting:
                return ConnectionState.CONNECTING
            if session.connected():
                session.pump()
            if not session.connected() or session.link_lost:
                return ConnectionState.DISCONNECTED
            return ConnectionState.CONNECTED

    def heartbeat(self) -> None:
        session = self._ensure()
        with session.lock:
            self._refuse_if_link_lost(session, "heartbeat")
            self._run(session, lambda: session.ib.reqCurrentTimeAsync(), "heartbeat")

    def _ensure(self) -> _Session:
        session = _session(self.host, self.port, self.client_id, create=True)
        assert session is not None
        with session.lock:
            if not session.connected():
                self._connect(session)
        return session

    def _connect(self, session: _Session) -> None:
        ib = session.ib

        async def connect() -> None:
            await ib.connectAsync(
                self.host,
                self.port,
                self.client_id,
                timeout=self.timeout,
                account=self.account,
                raiseSyncErrors=True,
                fetchFields=StartupFetch(0),  # (positions are always asked; nothing else)
            )
            self._check_account(ib.client.getAccounts())
            session.account = self.account
            # This client's working orders, so cancels and status events find them.
            await asyncio.wait_for(ib.reqOpenOrdersAsync(), self.timeout)
            await asyncio.wait_for(ib.reqAccountUpdatesAsync(self.account), self.timeout)

        where = f"{self.host}:{self.port} (client id {self.client_id})"
        session.connecting = True
        session.system_error = ""
        try:
            session.run(connect, self.timeout * 4)
            session.link_lost = False
            logger.info("IBKR connected to %s, account %s", where, self.account)
        except VenueConfigurationError:
            self._disconnect(session)
            raise
        except ConnectionRefusedError as exc:
            self._disconnect(session)
            raise VenueTemporaryError(f"IBKR {where}: connection refused ({exc})") from exc
        except TimeoutError as exc:
            self._disconnect(session)
            said = f"; TWS said {session.system_error}" if session.system_error else ""
            raise VenueTemporaryError(
                f"IBKR {where}: no API handshake within {self.timeout:g}s "
                f"(API enabled? client id already in use?){said}"
            ) from exc
        except (RequestError, ConnectionError, OSError) as exc:
            self._disconnect(session)
            said = f"; TWS said {session.system_error}" if session.system_error else ""
            raise VenueTemporaryError(f"IBKR {where}: cannot connect ({exc}){said}") from exc
        finally:
            session.connecting = False

    def _check_account(self, managed: list[str]) -> None:
        if self.account not in managed:
            raise VenueConfigurationError(
                f"IBKR account {self.account!r} is not managed by this TWS/Gateway login "
                f"(managed: {', '.join(managed) or 'none'}); check IBKR_ACCOUNT"
            )
        if self.require_paper_account and not self.account.startswith(PAPER_ACCOUNT_PREFIX):
            raise VenueConfigurationError(
                f"IBKR account {self.account!r} is not a paper account (paper ids start with "
                f"{PAPER_ACCOUNT_PREFIX!r}); refusing to connect while a paper account is "
                "required (IBKR_REQUIRE_PAPER)"
            )

    @staticmethod
    def _disconnect(session: _Session) -> None:
        try:
            with session.on_loop():
                session.ib.disconnect()
        except Exception:  # a half-open socket may fail to close; the session is reset anyway
            logger.exception("IBKR: disconnect after a failed connect")

    def _refuse_if_link_lost(self, session: _Session, what: str) -> None:
        if session.link_lost:
            raise VenueTemporaryError(
                f"IBKR {what}: TWS has lost its connection to IB (1100) and has not restored it"
            )

    def _run(
        self,
        session: _Session,
        fn: Callable[[], Awaitable[_T]],
        what: str,
        timeout: float | None = None,
    ) -> _T:
        """Run one request on the session's loop; ib_async's failures as VenueErrors."""
        limit = timeout or self.timeout
        try:
            return session.run(fn, limit)
        except VenueError:
            raise
        except RequestError as exc:
            raise _error_class(exc.code, exc.message) from exc
        except TimeoutError as exc:
            raise VenueTemporaryError(f"IBKR {what}: no answer within {limit:g}s") from exc
        except (ConnectionError, OSError) as exc:
            raise VenueTemporaryError(f"IBKR {what}: connection lost ({exc})") from exc

    # --- orders -------------------------------------------------------------------------

    def submit(self, order: VenueOrder) -> VenueAck:
        contract, ib_order = self._ib_order(order)
        session = self._ensure()
        with session.lock:
            self._refuse_if_link_lost(session, f"submit {order.client_order_id} (not sent)")

            async def submit() -> VenueAck:
                trade = self._session_trade(session, order)
                if trade is None:  # not placed yet in this session: place it now
                    trade = session.ib.placeOrder(contract, ib_order)
                return await self._await_ack(session, trade, order)

            return self._run(
                session, submit, f"submit {order.client_order_id}", timeout=self.timeout + 1
            )

    def _ib_order(self, order: VenueOrder) -> tuple[Stock, IbOrder]:
        cid = order.client_order_id
        if order.asset_class != "equity":
            raise VenueRejected(
                f"IBKR adapter trades equities only; {order.instrument} is {order.asset_class}",
                code="unsupported-asset-class",
            )
        if order.quantity <= 0:
            raise VenueRejected(
                f"order {cid}: quantity {order.quantity} must be > 0", code="invalid"
            )
        action = "BUY" if order.side is Side.BUY else "SELL"
        common = {"orderRef": cid, "account": self.account, "tif": "DAY", "transmit": True}
        if order.order_type is OrderType.LIMIT:
            if order.limit_price is None or order.limit_price <= 0:
                raise VenueRejected(
                    f"order {cid}: a limit order needs a limit price > 0", code="invalid"
                )
            ib_order: IbOrder = LimitOrder(
                action, float(order.quantity), float(order.limit_price), **common
            )
        else:
            ib_order = MarketOrder(action, float(order.quantity), **common)
        return Stock(order.instrument, "SMART", order.quote), ib_order

    def _session_trade(self, session: _Session, order: VenueOrder) -> Trade | None:
        """Our order as this session knows it: by permId, else by orderRef (open first)."""
        trades = list(session.ib.wrapper.trades.values())
        if order.broker_order_id:
            for trade in trades:
                if str(_perm_id(trade)) == order.broker_order_id:
                    return trade
        mine = [t for t in trades if t.order.orderRef == order.client_order_id]
        mine.sort(key=lambda t: t.isDone())
        return mine[0] if mine else None

    async def _await_ack(self, session: _Session, trade: Trade, order: VenueOrder) -> VenueAck:
        """Wait until IB reports the order (open order, status or a fill) or refuses it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        order_id = trade.order.orderId
        cid = order.client_order_id
        acked = False
        while True:
            refusal = self._refusal(session, order_id, during_submit=True)
            if refusal is not None:
                if isinstance(refusal, VenueRejected) and not trade.isDone():
                    # IB keeps it working (a warning for ib_async); we will not.
                    session.ib.cancelOrder(trade.order)
                    await asyncio.sleep(0)
                raise refusal
            perm_id = _perm_id(trade)
            if acked and perm_id:
                return VenueAck(broker_order_id=str(perm_id))
            if perm_id:
                acked = True  # one more turn: an error sent right after the ack is seen
                await asyncio.sleep(0)
                continue
            if trade.orderStatus.status in (IbStatus.Cancelled, IbStatus.Inactive):
                raise VenueRejected(
                    f"IBKR: order {cid} {trade.orderStatus.status} before it was acknowledged",
                    code=trade.orderStatus.status,
                )
            if not session.connected():
                raise VenueTemporaryError(
                    f"IBKR: connection lost before order {cid} was acknowledged; outcome unknown"
                )
            if loop.time() > deadline:
                raise VenueTemporaryError(
                    f"IBKR: no acknowledgement of order {cid} within {self.timeout:g}s; "
                    "outcome unknown (order_status will find it by its orderRef)"
                )
            await session.wait_for_tws(deadline - loop.time())

    @staticmethod
    def _refusal(session: _Session, order_id: int, *, during_submit: bool) -> VenueError | None:
        for code, message in session.order_errors.get(order_id, []):
            if code in NOTICE_CODES or (code == ORDER_CANCELLED and not during_submit):
                continue
            return _error_class(code, message)
        return None

    def cancel(self, order: VenueOrder) -> None:
        session = self._ensure()
        cid = order.client_order_id
        with session.lock:

            async def cancel() -> None:
                ib = session.ib
                trade = self._session_trade(session, order)
                if trade is None or trade.isDone():
                    listed = await ib.reqAllOpenOrdersAsync()
                    trade = self._match(listed, order) or trade
                if trade is None:
                    raise VenueRejected(f"IBKR has no order {cid} to cancel", code="not-found")
                if trade.isDone():
                    raise VenueRejected(
                        f"IBKR order {cid} is already {trade.orderStatus.status}", code="not-open"
                    )
                order_id = trade.order.orderId
                if trade.order.clientId != self.client_id or order_id <= 0:
                    # A cancel names an order id of THIS client: sending another client's
                    # id would cancel our own order that happens to share it.
                    raise VenueRejected(
                        f"IBKR order {cid} belongs to client id {trade.order.clientId}, "
                        f"not {self.client_id}: cancel it there (or cancel_all)",
                        code="foreign-order",
                    )
                session.order_errors.pop(order_id, None)
                ib.cancelOrder(trade.order)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + min(self.timeout, CANCEL_GRACE_SECONDS)
                while True:
                    refusal = self._refusal(session, order_id, during_submit=False)
                    if refusal is not None:
                        raise refusal
                    if trade.orderStatus.status in IbStatus.DoneStates:
                        return
                    if any(c == ORDER_CANCELLED for c, _ in session.order_errors.get(order_id, [])):
                        return
                    if not session.connected():
                        raise VenueTemporaryError(
                            f"IBKR: connection lost after the cancel of {cid}; outcome unknown"
                        )
                    if not await session.wait_for_tws(deadline - loop.time()):
                        # No answer yet: IB confirms later; the order waits in PENDING_CANCEL.
                        return

            self._run(session, cancel, f"cancel {cid}", timeout=self.timeout * 2 + 1)

    def cancel_all(self) -> int:
        """IB's global cancel (every working order of the login); returns how many were open."""
        session = self._ensure()
        with session.lock:

            async def cancel_all() -> int:
                listed = await session.ib.reqAllOpenOrdersAsync()
                working = [t for t in listed if not t.isDone()]
                session.ib.reqGlobalCancel()
                await asyncio.sleep(0)
                return len(working)

            return self._run(session, cancel_all, "global cancel")

    def order_status(self, order: VenueOrder) -> BrokerOrder | None:
        session = self._ensure()
        with session.lock:

            async def status() -> BrokerOrder | None:
                listed = await session.ib.reqAllOpenOrdersAsync()
                trade = self._match(listed, order)
                if trade is not None:
                    return self._broker_order(session, trade)
                completed = await session.ib.reqCompletedOrdersAsync(False)
                trade = self._match(completed, order)
                if trade is not None:
                    return self._broker_order(session, trade, completed=True)
                return None

            return self._run(
                session, status, f"order status {order.client_order_id}", self.timeout * 2
            )

    def open_orders(self) -> list[BrokerOrder]:
        session = self._ensure()
        with session.lock:

            async def listed() -> list[Trade]:
                return await session.ib.reqAllOpenOrdersAsync()

            trades = self._run(session, listed, "open orders")
            return [
                self._broker_order(session, t)
                for t in trades
                if t.order.account in (self.account, "")
            ]

    @staticmethod
    def _match(trades: list[Trade], order: VenueOrder) -> Trade | None:
        if order.broker_order_id:
            for trade in trades:
                if str(_perm_id(trade)) == order.broker_order_id:
                    return trade
        for trade in trades:
            if trade.order.orderRef == order.client_order_id:
                return trade
        return None

    def _broker_order(
        self, session: _Session, trade: Trade, *, completed: bool = False
    ) -> BrokerOrder:
        o, st = trade.order, trade.orderStatus
        perm_id = _perm_id(trade)
        if completed:
            filled = _dec(o.filledQuantity) or Decimal(0)
            reason = session.completed_status.get(perm_id, "")
            rejected = reason.lower().startswith("rejected")
        else:
            filled = _dec(st.filled) or Decimal(0)
            errors = [
                (c, m)
                for c, m in session.order_errors.get(o.orderId, [])
                if c not in NOTICE_CODES and o.clientId == self.client_id
            ]
            rejected = any(c != ORDER_CANCELLED for c, _ in errors)
            reason = f"IBKR {errors[-1][0]}: {errors[-1][1]}" if errors else ""
        limit = _dec(o.lmtPrice)
        avg = _dec(st.avgFillPrice)
        return BrokerOrder(
            broker_order_id=str(perm_id),
            client_order_id=o.orderRef or None,
            instrument=trade.contract.symbol or trade.contract.localSymbol,
            side=Side.BUY if o.action == "BUY" else Side.SELL,
            order_type=OrderType.LIMIT if o.orderType == "LMT" else OrderType.MARKET,
            quantity=_dec(o.totalQuantity) or Decimal(0),
            filled_quantity=filled,
            status=order_status_map(st.status, filled=filled, rejected=rejected),
            limit_price=limit if o.orderType == "LMT" else None,
            avg_fill_price=avg if avg else None,
            reason=reason,
        )

    # --- fills, positions, balances -------------------------------------------------------

    def fills_since(self, since: datetime) -> list[BrokerFill]:
        """Executions of the account since ``since`` (as far back as TWS keeps them).

        One per execId (a duplicate report is returned once), with its commission;
        a commission report may trail the executions, so a missing one is waited for
        briefly and, if it never comes, the fill is returned with fee 0 and a warning.
        """
        if since.tzinfo is None:
            raise ValueError("fills_since: since must be an aware datetime (UTC)")
        since_utc = since.astimezone(UTC)
        session = self._ensure()
        with session.lock:
            wrapper = session.ib.wrapper

            async def executions() -> list[Any]:
                fills = await session.ib.reqExecutionsAsync(
                    ExecutionFilter(
                        acctCode=self.account, time=since_utc.strftime("%Y%m%d-%H:%M:%S")
                    )
                )
                loop = asyncio.get_running_loop()
                deadline = loop.time() + min(self.timeout, COMMISSION_GRACE_SECONDS)
                while any(not self._commission_known(wrapper, f.execution.execId) for f in fills):
                    if not await session.wait_for_tws(deadline - loop.time()):
                        break
                return fills

            fills = self._run(session, executions, "executions", self.timeout * 2)
            result: list[BrokerFill] = []
            seen: set[str] = set()
            for fill in fills:
                ex = fill.execution
                if ex.execId in seen or (ex.acctNumber and ex.acctNumber != self.account):
                    continue
                seen.add(ex.execId)
                ts = ex.time.astimezone(UTC)
                if ts < since_utc:
                    continue
                fee = Decimal(0)
                if self._commission_known(wrapper, ex.execId):
                    fee = _dec(wrapper.fills[ex.execId].commissionReport.commission) or Decimal(0)
                else:
                    logger.warning("IBKR execution %s: no commission report; fee 0", ex.execId)
                result.append(
                    BrokerFill(
                        trade_id=ex.execId,
                        broker_order_id=str(ex.permId),
                        client_order_id=ex.orderRef or None,
                        instrument=fill.contract.symbol or fill.contract.localSymbol,
                        side=Side.BUY if ex.side == "BOT" else Side.SELL,
                        quantity=_dec(ex.shares) or Decimal(0),
                        price=_dec(ex.price) or Decimal(0),
                        fee=fee,
                        ts=ts,
                    )
                )
            return result

    @staticmethod
    def _commission_known(wrapper: Any, exec_id: str) -> bool:
        fill = wrapper.fills.get(exec_id)
        return bool(fill and fill.commissionReport.execId == exec_id)

    def positions(self) -> list[BrokerPosition]:
        session = self._ensure()
        with session.lock:

            async def positions() -> list[Any]:
                return await session.ib.reqPositionsAsync()

            latest: dict[Any, Any] = {}
            for position in self._run(session, positions, "positions"):
                if position.account == self.account:
                    latest[position.contract.conId or position.contract.symbol] = position
            return [
                BrokerPosition(
                    instrument=p.contract.symbol or p.contract.localSymbol,
                    quantity=_dec(p.position) or Decimal(0),
                    avg_price=_dec(p.avgCost) or None,
                )
                for p in latest.values()
                if p.position
            ]

    def balances(self) -> list[BrokerBalance]:
        """Cash per currency (TotalCashBalance; IB's BASE aggregate left out), with the
        available funds where IB reports them in that currency."""
        session = self._ensure()
        with session.lock:
            ib = session.ib

            async def account_values() -> list[Any]:
                values: list[Any] = []

                def collect(value: Any) -> None:
                    values.append(value)

                ib.accountValueEvent += collect
                try:
                    await ib.reqAccountUpdatesAsync(self.account)
                finally:
                    ib.accountValueEvent -= collect
                return values

            values = self._run(session, account_values, "account values")
            cash: dict[str, Decimal] = {}
            fallback: dict[str, Decimal] = {}
            available: dict[str, Decimal] = {}
            for value in values:
                if value.account != self.account or value.currency in ("", "BASE"):
                    continue
                target = {
                    "TotalCashBalance": cash,
                    "CashBalance": fallback,
                    "AvailableFunds": available,
                }.get(value.tag)
                if target is None:
                    continue
                try:
                    target[value.currency] = Decimal(value.value)
                except InvalidOperation:
                    logger.warning(
                        "IBKR account value %s=%r is not a number", value.tag, value.value
                    )
            cash = cash or fallback
            return [
                BrokerBalance(currency=currency, total=total, available=available.get(currency))
                for currency, total in sorted(cash.items())
            ]
