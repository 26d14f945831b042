"""A loopback fake of TWS / IB Gateway that speaks the TWS API socket protocol.

The real ``ib_async`` client connects to it unchanged: the ``API\\0`` + ``v<min>..<max>``
handshake, the server-version/connection-time reply, START_API, then NEXT_VALID_ID
and MANAGED_ACCTS; afterwards length-prefixed, NUL-separated messages laid out
exactly as ``ib_async/decoder.py`` (2.1.0) parses them at ``SERVER_VERSION`` 157,
the lowest version ib_async accepts (it keeps the messages small: no version-gated
fields after 157 are sent).

It keeps a tiny broker: orders (by permId), executions with commissions, positions
and cash per currency, and answers the requests an adapter makes (place/cancel
order, global cancel, open/all open/completed orders, executions, positions,
account updates and summary, current time, ids). Test controls make it misbehave the
ways a real gateway does: fills before the ack, duplicate execution reports, cancels
and orders behind the client's back, any error code, dropped or refused
connections, placed orders held or never received, malformed messages.

Market data (for the live feed): recorded 1-minute bars loaded per symbol
(``load_bars``) and a market clock the test moves (``set_market_time``,
``advance_market``). It answers reqHistoricalData (bars of any intraday size,
aggregated from the minutes, the in-progress bar included as TWS does, error 162 "HMDS
query returned no data" when there are none) and reqRealTimeBars: every 5 seconds of
market time each subscription gets the 5-second bar TWS would send, ``split_minute``
of the recorded minute (12 bars whose aggregate is the minute exactly), or a
zero-volume bar at the last price when the minute had no trades. Controls: pacing
and other errors on the next historical request or on the live subscriptions, a
connection dropped on the next historical request, single hand-made 5-second bars.
reqCurrentTime answers the market clock once one is set. ``auto_fill`` makes it an
executing broker: every market order fills at the price of the minute forming.

The server runs its own asyncio loop in a daemon thread; every public method is
thread-safe (it runs on that loop and waits for the result), so tests and bench
scripts drive it from the main thread while ib_async runs its own loop there.
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

SERVER_VERSION = 157
OPEN_STATUSES = frozenset({"PendingSubmit", "PreSubmitted", "Submitted", "PendingCancel"})

# Incoming message ids (client -> TWS) the fake understands, by name for the calls log.
IN_MSG = {
    3: "placeOrder",
    4: "cancelOrder",
    5: "reqOpenOrders",
    6: "reqAccountUpdates",
    7: "reqExecutions",
    8: "reqIds",
    15: "reqAutoOpenOrders",
    16: "reqAllOpenOrders",
    17: "reqManagedAccts",
    20: "reqHistoricalData",
    25: "cancelHistoricalData",
    49: "reqCurrentTime",
    50: "reqRealTimeBars",
    51: "cancelRealTimeBars",
    58: "reqGlobalCancel",
    61: "reqPositions",
    62: "reqAccountSummary",
    63: "cancelAccountSummary",
    64: "cancelPositions",
    71: "startApi",
    76: "reqAccountUpdatesMulti",
    77: "cancelAccountUpdatesMulti",
    99: "reqCompletedOrders",
}


def _s(value: Any) -> str:
    """One wire field: None is empty, bools are 0/1, Decimals without exponent."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _frame(fields: list[Any] | tuple[Any, ...]) -> bytes:
    payload = "".join(_s(f) + "\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


def _dec(text: str) -> Decimal | None:
    return Decimal(text) if text not in ("", None) else None


@dataclass
class FakeOrder:
    perm_id: int
    order_id: int
    client_id: int
    account: str
    symbol: str
    currency: str
    action: str  # BUY | SELL
    quantity: Decimal
    order_type: str  # MKT | LMT
    limit_price: Decimal | None
    tif: str
    order_ref: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    status: str = "Submitted"
    filled: Decimal = Decimal(0)
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    completed_time: str = ""
    completed_status: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass
class FakeExecution:
    exec_id: str
    order: FakeOrder
    shares: Decimal
    price: Decimal
    cum_qty: Decimal
    avg_price: Decimal
    time: datetime
    commission: Decimal
    commission_currency: str


@dataclass
class FakePosition:
    account: str
    symbol: str
    currency: str
    quantity: Decimal
    avg_cost: Decimal
    con_id: int


@dataclass
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    client_id: int | None = None
    ready: bool = False
    positions_subscribed: bool = False
    realtime: dict[int, str] = field(default_factory=dict)  # reqId -> symbol (5 s bars)

    def send(self, *fields: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(fields))


@dataclass
class _PlacePlan:
    kind: str  # accept | warn | hold | ignore | reject | fill_before_ack | drop_connection
    code: int = 0
    message: str = ""
    keep_open: bool = False
    price: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)


@dataclass
class Call:
    name: str
    fields: list[str]
    client_id: int | None
    at: float = field(default_factory=time.monotonic)


class TwsFake:
    """A TWS/IB Gateway on 127.0.0.1 (a free port), as a context manager."""

    def __init__(
        self,
        *,
        accounts: tuple[str, ...] = ("DU1234567",),
        server_version: int = SERVER_VERSION,
        base_currency: str = "USD",
        cash: dict[str, Decimal] | None = None,
        first_order_id: int = 1,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.accounts = list(accounts)
        self.server_version = server_version
        self.base_currency = base_currency
        self._cash: dict[str, Decimal] = dict(cash or {base_currency: Decimal("100000")})
        self._next_order_id = first_order_id
        self._next_perm_id = 1_000_001
        self._next_con_id = 265_598
        self._exec_seq = 0
        self._orders: dict[int, FakeOrder] = {}  # permId -> order
        self._executions: list[FakeExecution] = []
        self._positions: dict[tuple[str, str], FakePosition] = {}
        self._con_ids: dict[str, int] = {}
        self._plans: deque[_PlacePlan] = deque()
        self._sessions: list[_Session] = []
        self._calls: list[Call] = []
        self._placed: Counter[str] = Counter()
        self._refusing = False
        self.malformed_on_connect = False  # send a malformed message during the handshake
        # Market data: symbol -> {minute open time: (open, high, low, close, volume)}.
        self._minutes: dict[str, dict[datetime, tuple[Decimal, ...]]] = {}
        self._minute_keys: dict[str, list[datetime]] = {}
        self._market_now: datetime | None = None
        self._history_plans: deque[tuple[str, int, str]] = deque()  # (kind, code, message)
        self._realtime_plans: deque[tuple[int, str]] = deque()  # (code, message)
        self._farm_broken = False  # market data farm down: 5-second bars are not sent
        self._auto_fill: Decimal | None = None  # commission per auto-filled order, when on
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    # --- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> TwsFake:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="tws-fake", daemon=True)
        self._thread.start()
        ready.wait(5)
        self._call_async(self._listen(0))

    def stop(self) -> None:
        if not self._loop or not self._thread:
            return
        self._call_async(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = None

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server:
            self._server.close()
            self._server = None
        for session in list(self._sessions):
            session.writer.close()
        self._sessions.clear()

    def _call(self, fn: Callable[[], Any], timeout: float = 5) -> Any:
        """Run ``fn`` on the fake's loop (the only thread touching its state)."""

        async def wrapper() -> Any:
            return fn()

        return self._call_async(wrapper(), timeout)

    def _call_async(self, coro: Any, timeout: float = 5) -> Any:
        assert self._loop is not None, "TwsFake is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # --- connection controls ----------------------------------------------------------

    def drop_connections(self) -> int:
        """Close every client socket (as a gateway restart would); returns how many."""

        def drop() -> int:
            sessions = list(self._sessions)
            for session in sessions:
                session.writer.transport.abort()
            self._sessions.clear()
            return len(sessions)

        return self._call(drop)

    def refuse_connections(self) -> None:
        """Stop listening: a connect gets ECONNREFUSED until ``accept_connections``."""

        async def refuse() -> None:
            self._refusing = True
            if self._server:
                self._server.close()
                self._server = None

        self._call_async(refuse())

    def accept_connections(self) -> None:
        async def accept() -> None:
            self._refusing = False
            if self._server is None:
                await self._listen(self.port)

        self._call_async(accept())

    def connected_clients(self) -> list[int | None]:
        return self._call(lambda: [s.client_id for s in self._sessions if s.ready])

    # --- order placement plans --------------------------------------------------------

    def hold_next_order(self) -> None:
        """The next placed order is recorded (it is working) but never answered."""
        self._call(lambda: self._plans.append(_PlacePlan("hold")))

    def ignore_next_order(self) -> None:
        """The next placed order never reaches the broker (lost on the way)."""
        self._call(lambda: self._plans.append(_PlacePlan("ignore")))

    def reject_next_order(self, code: int, message: str, *, keep_open: bool = False) -> None:
        """Answer the next placed order with ERR_MSG ``code``; ``keep_open`` keeps it working
        at the broker (IB's 404 "held while we locate shares"), else it is dead."""
        self._call(
            lambda: self._plans.append(_PlacePlan("reject", code, message, keep_open=keep_open))
        )

    def warn_next_order(self, code: int, message: str) -> None:
        """Send ERR_MSG ``code`` about the next placed order, then accept it (a notice
        such as 399 "order will be placed at the open" or a 21xx warning)."""
        self._call(lambda: self._plans.append(_PlacePlan("warn", code, message)))

    def fill_next_order_before_ack(self, *, price: Decimal, commission: Decimal) -> None:
        """Fill the next placed order completely, sending the execution report BEFORE the
        open-order / order-status messages that acknowledge it."""
        self._call(
            lambda: self._plans.append(
                _PlacePlan("fill_before_ack", price=price, commission=commission)
            )
        )

    def drop_connection_on_next_order(self) -> None:
        """Record the next placed order, then drop the connection without answering."""
        self._call(lambda: self._plans.append(_PlacePlan("drop_connection")))

    def auto_fill(self, *, commission: Decimal = Decimal("1.00")) -> int:
        """From now on every open market order is filled completely at the market price (the
        open of the minute forming at the market clock, else the last close before it): the
        ones open now, each one placed after its acknowledgement, and any still open when the
        market clock moves. Returns how many were filled now."""

        def on() -> int:
            self._auto_fill = commission
            return self._fill_open_market_orders()

        return self._call(on)

    # --- broker-side events -----------------------------------------------------------

    def fill(
        self,
        order_ref: str,
        *,
        price: Decimal,
        quantity: Decimal | None = None,
        commission: Decimal = Decimal("1.00"),
        duplicate: bool = False,
    ) -> str:
        """Execute ``quantity`` (default: the rest) of the order with ``order_ref``.

        Sends EXECUTION_DATA + COMMISSION_REPORT (twice with the same execId when
        ``duplicate``) and the new ORDER_STATUS to the owning client; books position
        and cash. Returns the execId.
        """
        return self._call(
            lambda: self._fill(self._by_ref(order_ref), price, quantity, commission, duplicate)
        )

    def cancel_order(self, order_ref: str, reason: str = "Cancelled by the exchange") -> None:
        """Cancel an order behind the client's back (ORDER_STATUS Cancelled + error 202)."""

        def cancel() -> None:
            order = self._by_ref(order_ref)
            self._cancel(order, reason)

        self._call(cancel)

    def add_foreign_order(
        self,
        *,
        symbol: str,
        action: str,
        quantity: Decimal,
        limit_price: Decimal | None = None,
        order_ref: str = "",
        client_id: int = 0,
        account: str | None = None,
    ) -> int:
        """An order placed elsewhere (TWS by hand, another client): returns its permId."""

        def add() -> int:
            order = FakeOrder(
                perm_id=self._new_perm_id(),
                order_id=0,
                client_id=client_id,
                account=account or self.accounts[0],
                symbol=symbol,
                currency=self.base_currency,
                action=action,
                quantity=quantity,
                order_type="LMT" if limit_price is not None else "MKT",
                limit_price=limit_price,
                tif="DAY",
                order_ref=order_ref,
            )
            self._orders[order.perm_id] = order
            return order.perm_id

        return self._call(add)

    def forget_order(self, order_ref: str) -> None:
        """The broker loses an order: it vanishes from every listing, no message sent."""
        self._call(lambda: self._orders.pop(self._by_ref(order_ref).perm_id))

    def set_position(
        self,
        symbol: str,
        quantity: Decimal,
        avg_cost: Decimal = Decimal(0),
        *,
        currency: str | None = None,
        account: str | None = None,
    ) -> None:
        """Change a position behind the client's back (pushed to position subscribers)."""

        def set_() -> None:
            position = self._position(account or self.accounts[0], symbol, currency)
            position.quantity = quantity
            position.avg_cost = avg_cost
            self._push_position(position)

        self._call(set_)

    def set_cash(self, currency: str, amount: Decimal) -> None:
        self._call(lambda: self._cash.__setitem__(currency, amount))

    def emit_error(self, code: int, message: str, *, req_id: int = -1) -> None:
        """Send ERR_MSG (id ``req_id``, ``code``, ``message``) to every connected client."""
        self._broadcast(4, 2, req_id, code, message)

    def send_raw(self, payload: bytes) -> None:
        """Send one length-prefixed message with ``payload`` as is (may be invalid)."""

        def send() -> None:
            for session in self._sessions:
                if not session.writer.is_closing():
                    session.writer.write(struct.pack(">I", len(payload)) + payload)

        self._call(send)

    MALFORMED = {
        # no NUL-terminated fields at all, and bytes that are not UTF-8
        "garbage": b"\xff\xfe garbage",
        # a message id that is not a number
        "bad_id": b"abc\x001\x00",
        # a message id no TWS version has
        "unknown_id": b"999\x001\x00",
        # ORDER_STATUS whose numbers are not numbers
        "bad_number": b"3\x00seven\x00Submitted\x00lots\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        # COMMISSION_REPORT cut short
        "truncated": b"59\x001\x00",
        # REAL_TIME_BARS whose prices are not numbers
        "bad_realtime_bar": b"50\x003\x001\x001381146300\x00high\x00x\x00\x00\x00\x00\x00\x00",
        # HISTORICAL_DATA announcing 3 bars and carrying half of one
        "bad_historical": b"17\x001\x00a\x00b\x003\x001381146300\x00167.1\x00",
    }

    def send_malformed(self, kind: str = "garbage") -> None:
        """Send one malformed message (see ``MALFORMED``), framed correctly."""
        self.send_raw(self.MALFORMED[kind])

    # --- market data: recorded minutes, market clock, 5-second and historical bars -------

    def load_bars(
        self, symbol: str, source: Path | list[tuple[datetime, tuple[Decimal, ...]]]
    ) -> int:
        """Serve ``symbol`` from recorded 1-minute bars: a CSV in the shared-data format
        (``timestamp,open,high,low,close,volume``) or (open time, (o, h, l, c, v)) pairs."""
        rows = read_minutes(source) if isinstance(source, Path) else list(source)

        def load() -> int:
            self._minutes[symbol] = dict(rows)
            self._minute_keys[symbol] = sorted(self._minutes[symbol])
            return len(rows)

        return self._call(load)

    def set_market_time(self, now: datetime) -> None:
        """Move the market clock without sending anything (before a test starts)."""
        self._call(lambda: setattr(self, "_market_now", now))

    def market_time(self) -> datetime | None:
        return self._call(lambda: self._market_now)

    def advance_market(self, to: datetime) -> int:
        """Move the market clock forward to ``to``, sending every subscription the 5-second
        bars that closed on the way, in order; returns how many bars were sent."""

        def advance() -> int:
            assert self._market_now is not None, "set_market_time first"
            sent = 0
            slot = _floor(self._market_now, 5)
            while slot + timedelta(seconds=5) <= to:
                if slot + timedelta(seconds=5) > self._market_now and not self._farm_broken:
                    for session in self._sessions:
                        for req_id, symbol in list(session.realtime.items()):
                            bar = self._five_second_bar(symbol, slot)
                            if bar is not None:
                                session.send(*self._realtime_bar_fields(req_id, slot, bar))
                                sent += 1
                slot += timedelta(seconds=5)
            self._market_now = max(self._market_now, to)
            if self._auto_fill is not None:
                self._fill_open_market_orders()
            return sent

        return self._call(advance)

    def break_market_data_farm(self) -> None:
        """TWS loses its market data farm: 2103 to every client, and no 5-second bars are
        sent until ``restore_market_data_farm`` (the market goes on: those bars are lost)."""

        def broken() -> None:
            self._farm_broken = True
            for session in self._sessions:
                if session.ready:
                    session.send(4, 2, -1, 2103, "Market data farm connection is broken:usfarm")

        self._call(broken)

    def restore_market_data_farm(self) -> None:
        """2104 to every client; 5-second bars flow again."""

        def restored() -> None:
            self._farm_broken = False
            for session in self._sessions:
                if session.ready:
                    session.send(4, 2, -1, 2104, "Market data farm connection is OK:usfarm")

        self._call(restored)

    def fail_next_historical(self, code: int, message: str) -> None:
        """Answer the next reqHistoricalData with ERR_MSG ``code`` (162: pacing violation)."""
        self._call(lambda: self._history_plans.append(("error", code, message)))

    def drop_connection_on_next_historical(self) -> None:
        """Drop the connection when the next reqHistoricalData arrives (mid-backfill)."""
        self._call(lambda: self._history_plans.append(("drop", 0, "")))

    def hold_next_historical(self) -> None:
        """Never answer the next reqHistoricalData (a hanging HMDS)."""
        self._call(lambda: self._history_plans.append(("hold", 0, "")))

    def fail_next_realtime(self, code: int, message: str) -> None:
        """Refuse the next reqRealTimeBars with ERR_MSG ``code`` (420: pacing)."""
        self._call(lambda: self._realtime_plans.append((code, message)))

    def fail_realtime(self, code: int, message: str) -> int:
        """Send ERR_MSG ``code`` about every live 5-second-bar subscription and end them
        (as TWS does after a 420); returns how many there were."""

        def fail() -> int:
            count = 0
            for session in self._sessions:
                for req_id in list(session.realtime):
                    session.send(4, 2, req_id, code, message)
                    del session.realtime[req_id]
                    count += 1
            return count

        return self._call(fail)

    def send_realtime_bar(
        self, symbol: str, ts: datetime, bar: tuple[Decimal, ...], *, count: int = 1
    ) -> int:
        """Send one hand-made 5-second bar (o, h, l, c, v) at ``ts`` to the subscriptions
        of ``symbol`` (may be inconsistent: high below low, ...)."""

        def send() -> int:
            sent = 0
            for session in self._sessions:
                for req_id, sub_symbol in session.realtime.items():
                    if sub_symbol == symbol:
                        session.send(*self._realtime_bar_fields(req_id, ts, bar, count=count))
                        sent += 1
            return sent

        return self._call(send)

    def realtime_subscriptions(self) -> list[tuple[int | None, int, str]]:
        """(client id, reqId, symbol) of every live 5-second-bar subscription."""
        return self._call(
            lambda: [
                (s.client_id, req_id, symbol)
                for s in self._sessions
                for req_id, symbol in s.realtime.items()
            ]
        )

    # --- observations -----------------------------------------------------------------

    def placed_count(self, order_ref: str | None = None) -> int:
        """Orders placed (PLACE_ORDER messages received), in all or for one orderRef."""
        return self._call(
            lambda: sum(self._placed.values()) if order_ref is None else self._placed[order_ref]
        )

    def calls(self, name: str | None = None) -> list[Call]:
        return self._call(lambda: [c for c in self._calls if name is None or c.name == name])

    def call_count(self, name: str) -> int:
        return len(self.calls(name))

    def wait_for_calls(self, name: str, count: int = 1, timeout: float = 5) -> list[Call]:
        """Wait until ``count`` requests named ``name`` arrived (they come asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls(name)
            if len(calls) >= count or time.monotonic() > deadline:
                return calls
            time.sleep(0.01)

    def order(self, order_ref: str) -> FakeOrder:
        return self._call(lambda: self._by_ref(order_ref))

    def orders(self) -> list[FakeOrder]:
        return self._call(lambda: list(self._orders.values()))

    def positions(self) -> dict[str, Decimal]:
        """symbol -> quantity of every position the fake books (zero ones included)."""
        return self._call(lambda: {p.symbol: p.quantity for p in self._positions.values()})

    def executions(self) -> list[tuple[str, str, Decimal, Decimal]]:
        """(execId, orderRef, shares, price) of every execution, in order."""
        return self._call(
            lambda: [(e.exec_id, e.order.order_ref, e.shares, e.price) for e in self._executions]
        )

    def cash(self, currency: str) -> Decimal:
        return self._call(lambda: self._cash.get(currency, Decimal(0)))

    # --- internals (loop thread only) -------------------------------------------------

    def _by_ref(self, order_ref: str) -> FakeOrder:
        for order in self._orders.values():
            if order.order_ref == order_ref:
                return order
        raise KeyError(f"TwsFake: no order with orderRef {order_ref!r}")

    def _new_perm_id(self) -> int:
        self._next_perm_id += 1
        return self._next_perm_id

    def _con_id(self, symbol: str) -> int:
        if symbol not in self._con_ids:
            self._next_con_id += 1
            self._con_ids[symbol] = self._next_con_id
        return self._con_ids[symbol]

    def _position(self, account: str, symbol: str, currency: str | None) -> FakePosition:
        key = (account, symbol)
        if key not in self._positions:
            self._positions[key] = FakePosition(
                account,
                symbol,
                currency or self.base_currency,
                Decimal(0),
                Decimal(0),
                self._con_id(symbol),
            )
        return self._positions[key]

    def _owner(self, order: FakeOrder) -> list[_Session]:
        return [s for s in self._sessions if s.ready and s.client_id in (order.client_id, 0)]

    def _broadcast(self, *fields: Any) -> None:
        def send() -> None:
            for session in self._sessions:
                if session.ready:
                    session.send(*fields)

        self._call(send)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(reader, writer)
        if self._refusing:
            writer.close()
            return
        self._sessions.append(session)
        try:
            prefix = await reader.readexactly(4)
            if prefix != b"API\0":
                return
            size = struct.unpack(">I", await reader.readexactly(4))[0]
            versions = (await reader.readexactly(size)).decode().split(" ")[0]
            low, high = (int(v) for v in versions.lstrip("v").split(".."))
            version = min(self.server_version, high)
            if version < low:
                return
            now = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
            writer.write(_frame([version, now]))
            while True:
                size = struct.unpack(">I", await reader.readexactly(4))[0]
                fields = (await reader.readexactly(size)).decode(errors="replace").split("\0")
                fields.pop()
                try:
                    self._handle(session, fields)
                except Exception as exc:  # a fake bug must show, not kill the session silently
                    self._calls.append(Call("fake-error", [repr(exc), *fields], session.client_id))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if session in self._sessions:
                self._sessions.remove(session)
            writer.close()

    def _handle(self, session: _Session, fields: list[str]) -> None:
        msg_id = int(fields[0])
        self._calls.append(Call(IN_MSG.get(msg_id, f"msg{msg_id}"), fields, session.client_id))
        handler = getattr(self, f"_on_{IN_MSG.get(msg_id, '')}", None)
        if handler:
            handler(session, fields)

    # --- request handlers ---------------------------------------------------------------

    def _on_startApi(self, session: _Session, fields: list[str]) -> None:
        client_id = int(fields[2])
        if any(s.ready and s.client_id == client_id for s in self._sessions):
            session.send(
                4,
                2,
                -1,
                326,
                "Unable to connect as the client id is already in use. Retry with a unique client id.",
            )
            session.writer.close()
            return
        session.client_id = client_id
        session.ready = True
        replies = _frame([15, 1, ",".join(self.accounts)]) + _frame([9, 1, self._next_valid_id()])
        if self.malformed_on_connect:
            # Before the API is ready ib_async's socket handler parses it, not the decoder.
            # In the same write as the replies after it: one read brings all three, and
            # the replies must still be handled after the bad message.
            replies = struct.pack(">I", 4) + b"abc\0" + replies
        session.writer.write(replies)

    def _next_valid_id(self) -> int:
        ids = [o.order_id for o in self._orders.values()]
        return max([self._next_order_id, *(i + 1 for i in ids)])

    def _on_reqIds(self, session: _Session, fields: list[str]) -> None:
        session.send(9, 1, self._next_valid_id())

    def _on_reqManagedAccts(self, session: _Session, fields: list[str]) -> None:
        session.send(15, 1, ",".join(self.accounts))

    def _on_reqCurrentTime(self, session: _Session, fields: list[str]) -> None:
        now = self._market_now.timestamp() if self._market_now else time.time()
        session.send(49, 1, int(now))

    def _on_placeOrder(self, session: _Session, fields: list[str]) -> None:
        order_id = int(fields[1])
        symbol, sec_type, exchange, currency = fields[3], fields[4], fields[9], fields[11]
        action, quantity, order_type = fields[16], Decimal(fields[17]), fields[18]
        limit_price, tif, account, order_ref = _dec(fields[19]), fields[21], fields[23], fields[26]
        self._placed[order_ref] += 1
        plan = self._plans.popleft() if self._plans else _PlacePlan("accept")
        if plan.kind == "ignore":
            return
        existing = next(
            (
                o
                for o in self._orders.values()
                if o.client_id == session.client_id and o.order_id == order_id and o.is_open
            ),
            None,
        )
        order = existing or FakeOrder(
            perm_id=self._new_perm_id(),
            order_id=order_id,
            client_id=session.client_id or 0,
            account=account or self.accounts[0],
            symbol=symbol,
            currency=currency,
            action=action,
            quantity=quantity,
            order_type=order_type,
            limit_price=limit_price,
            tif=tif,
            order_ref=order_ref,
            sec_type=sec_type,
            exchange=exchange,
        )
        if existing:  # a modification
            order.quantity, order.limit_price = quantity, limit_price
        if plan.kind == "reject":
            session.send(4, 2, order_id, plan.code, plan.message)
            if plan.keep_open:
                order.status = "PreSubmitted"
                self._orders[order.perm_id] = order
            return
        self._orders[order.perm_id] = order
        if plan.kind == "warn":
            session.send(4, 2, order_id, plan.code, plan.message)
        if plan.kind == "hold":
            return
        if plan.kind == "drop_connection":
            session.writer.transport.abort()
            return
        if plan.kind == "fill_before_ack":
            self._fill(order, plan.price, None, plan.commission, False, send_status=False)
        self._report(session, order)
        if self._auto_fill is not None:
            self._fill_open_market_orders()

    def _report(self, session: _Session, order: FakeOrder) -> None:
        session.send(*self._open_order_fields(order))
        session.send(*self._order_status_fields(order))

    def _on_cancelOrder(self, session: _Session, fields: list[str]) -> None:
        order_id = int(fields[2])
        order = next(
            (
                o
                for o in self._orders.values()
                if o.client_id == session.client_id and o.order_id == order_id
            ),
            None,
        )
        if order is None:
            session.send(
                4,
                2,
                order_id,
                10147,
                f"OrderId {order_id} that needs to be cancelled is not found.",
            )
        elif not order.is_open:
            session.send(
                4,
                2,
                order_id,
                161,
                f"Cancel attempted when order is not in a cancellable state.  Order permId ={order.perm_id}",
            )
        else:
            self._cancel(order, "")

    def _cancel(self, order: FakeOrder, reason: str) -> None:
        order.status = "Cancelled"
        order.completed_time = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
        order.completed_status = reason or "Cancelled by Trader"
        for session in self._owner(order):
            session.send(*self._order_status_fields(order))
            session.send(4, 2, order.order_id, 202, f"Order Canceled - reason:{reason}")

    def _on_reqGlobalCancel(self, session: _Session, fields: list[str]) -> None:
        for order in list(self._orders.values()):
            if order.is_open:
                self._cancel(order, "")

    def _open_orders(self, session: _Session, *, all_clients: bool) -> None:
        for order in self._orders.values():
            if order.is_open and (all_clients or order.client_id == session.client_id):
                self._report(session, order)
        session.send(53, 1)

    def _on_reqOpenOrders(self, session: _Session, fields: list[str]) -> None:
        self._open_orders(session, all_clients=False)

    def _on_reqAllOpenOrders(self, session: _Session, fields: list[str]) -> None:
        self._open_orders(session, all_clients=True)

    def _on_reqCompletedOrders(self, session: _Session, fields: list[str]) -> None:
        for order in self._orders.values():
            if not order.is_open:
                session.send(*self._completed_order_fields(order))
        session.send(102)

    def _on_reqExecutions(self, session: _Session, fields: list[str]) -> None:
        req_id, client_id, account, since = (
            int(fields[2]),
            int(fields[3] or 0),
            fields[4],
            fields[5],
        )
        floor = None
        if since:
            floor = datetime.strptime(since.replace("-", " ")[:17], "%Y%m%d %H:%M:%S").replace(
                tzinfo=UTC
            )
        for execution in self._executions:
            if client_id and execution.order.client_id != client_id:
                continue
            if account and execution.order.account != account:
                continue
            if floor and execution.time < floor:
                continue
            session.send(*self._execution_fields(req_id, execution))
            session.send(*self._commission_fields(execution))
        session.send(55, 1, req_id)

    def _on_reqPositions(self, session: _Session, fields: list[str]) -> None:
        session.positions_subscribed = True
        for position in self._positions.values():
            session.send(*self._position_fields(position))
        session.send(62, 1)

    def _on_cancelPositions(self, session: _Session, fields: list[str]) -> None:
        session.positions_subscribed = False

    def _push_position(self, position: FakePosition) -> None:
        for session in self._sessions:
            if session.ready and session.positions_subscribed:
                session.send(*self._position_fields(position))

    def _account_values(self, account: str) -> list[tuple[str, str, str]]:
        values = [("AccountCode", account, ""), ("AccountType", "INDIVIDUAL", "")]
        total = Decimal(0)
        for currency, amount in sorted(self._cash.items()):
            values.append(("CashBalance", _s(amount), currency))
            values.append(("TotalCashBalance", _s(amount), currency))
            total += amount  # the fake's FX rate is 1
        values.append(("CashBalance", _s(total), "BASE"))
        values.append(("TotalCashValue", _s(total), self.base_currency))
        values.append(("AvailableFunds", _s(total), self.base_currency))
        values.append(("NetLiquidation", _s(total), self.base_currency))
        return values

    def _on_reqAccountUpdates(self, session: _Session, fields: list[str]) -> None:
        subscribe, account = fields[2] == "1", fields[3] or self.accounts[0]
        if not subscribe:
            return
        for tag, value, currency in self._account_values(account):
            session.send(6, 2, tag, value, currency, account)
        session.send(8, 1, datetime.now(UTC).strftime("%H:%M"))
        session.send(54, 1, account)

    def _on_reqAccountUpdatesMulti(self, session: _Session, fields: list[str]) -> None:
        req_id, account = int(fields[2]), fields[3] or self.accounts[0]
        for tag, value, currency in self._account_values(account):
            session.send(73, 1, req_id, account, "", tag, value, currency)
        session.send(74, 1, req_id)

    def _on_reqAccountSummary(self, session: _Session, fields: list[str]) -> None:
        req_id = int(fields[2])
        for account in self.accounts:
            for tag, value, currency in self._account_values(account):
                session.send(63, 1, req_id, account, tag, value, currency)
        session.send(64, 1, req_id)

    # --- fills ------------------------------------------------------------------------

    def _market_price(self, symbol: str) -> Decimal | None:
        """The open of the minute forming at the market clock, else the last close before it."""
        if self._market_now is None:
            return None
        minute = _floor(self._market_now, 60)
        row = self._minutes.get(symbol, {}).get(minute)
        return row[0] if row is not None else self._last_close(symbol, minute)

    def _fill_open_market_orders(self) -> int:
        assert self._auto_fill is not None
        filled = 0
        for order in list(self._orders.values()):
            if order.is_open and order.order_type == "MKT" and order.remaining > 0:
                price = self._market_price(order.symbol)
                if price is not None:
                    self._fill(order, price, None, self._auto_fill, False)
                    filled += 1
        return filled

    def _fill(
        self,
        order: FakeOrder,
        price: Decimal,
        quantity: Decimal | None,
        commission: Decimal,
        duplicate: bool,
        *,
        send_status: bool = True,
    ) -> str:
        shares = order.remaining if quantity is None else quantity
        if shares <= 0 or shares > order.remaining:
            raise ValueError(
                f"TwsFake: cannot fill {shares} of {order.order_ref} ({order.remaining} left)"
            )
        self._exec_seq += 1
        exec_id = f"0000e0d5.{order.perm_id:08x}.{self._exec_seq:02d}.01"
        cost = order.avg_fill_price * order.filled + price * shares
        order.filled += shares
        order.avg_fill_price = cost / order.filled
        order.last_fill_price = price
        if order.filled == order.quantity:
            order.status = "Filled"
            order.completed_time = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
            order.completed_status = "Filled Size: " + _s(order.filled)
        execution = FakeExecution(
            exec_id,
            order,
            shares,
            price,
            order.filled,
            order.avg_fill_price,
            datetime.now(UTC).replace(microsecond=0),
            commission,
            self.base_currency,
        )
        self._executions.append(execution)
        if duplicate:
            self._executions.append(execution)
        signed = shares if order.action == "BUY" else -shares
        position = self._position(order.account, order.symbol, order.currency)
        new_quantity = position.quantity + signed
        if new_quantity and (position.quantity >= 0) == (signed >= 0):
            position.avg_cost = (
                position.avg_cost * position.quantity + price * signed
            ) / new_quantity
        elif not new_quantity:
            position.avg_cost = Decimal(0)
        position.quantity = new_quantity
        self._cash[order.currency] = self._cash.get(order.currency, Decimal(0)) - signed * price
        self._cash[self.base_currency] = self._cash.get(self.base_currency, Decimal(0)) - commission
        for session in self._owner(order):
            for _ in range(2 if duplicate else 1):
                session.send(*self._execution_fields(-1, execution))
                session.send(*self._commission_fields(execution))
            if send_status:
                session.send(*self._order_status_fields(order))
        self._push_position(position)
        return exec_id

    # --- message layouts (ib_async 2.1.0 decoder.py at server version 157) -------------

    def _contract11(self, symbol: str, sec_type: str, exchange: str, currency: str) -> list[Any]:
        # conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange,
        # currency, localSymbol, tradingClass
        return [
            self._con_id(symbol),
            symbol,
            sec_type,
            "",
            "",
            "",
            "",
            exchange,
            currency,
            symbol,
            symbol,
        ]

    def _order_status_fields(self, order: FakeOrder) -> list[Any]:
        return [
            3,
            order.order_id,
            order.status,
            order.filled,
            order.remaining,
            order.avg_fill_price,
            order.perm_id,
            0,
            order.last_fill_price,
            order.client_id,
            "",
            "",
        ]

    def _open_order_fields(self, order: FakeOrder) -> list[Any]:
        o = order
        return [
            5,
            o.order_id,
            *self._contract11(o.symbol, o.sec_type, o.exchange, o.currency),
            o.action,
            o.quantity,
            o.order_type,
            o.limit_price,
            "",
            o.tif,
            "",
            o.account,
            "",
            0,
            o.order_ref,
            o.client_id,
            o.perm_id,
            0,
            0,
            "",
            "",
            "",  # sharesAllocation (deprecated)
            "",
            "",
            "",  # faGroup, faMethod, faPercentage
            "",  # faProfile (server version < 177)
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",  # modelCode .. auctionStrategy
            "",
            "",
            "",
            "",
            "",
            "",
            0,
            0,
            0,
            "",
            "",
            0,
            0,
            "",
            0,
            0,
            "",
            "",  # .. volatilityType
            "",
            "",  # deltaNeutralOrderType (empty: no delta-neutral block), deltaNeutralAuxPrice
            "",
            "",
            "",
            "",
            "",
            "",
            "",  # continuousUpdate .. comboLegsDescrip
            0,
            0,
            0,  # combo legs, order combo legs, smart combo routing params
            "",
            "",
            "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
            "",  # hedgeType
            0,
            "",
            "",
            0,
            0,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc
            "",  # algoStrategy
            0,
            0,
            o.status,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            0,
            0,
            0,  # conditions
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            0,
            0,
            "",
            0,
        ]

    def _completed_order_fields(self, order: FakeOrder) -> list[Any]:
        o = order
        return [
            101,
            *self._contract11(o.symbol, o.sec_type, o.exchange, o.currency),
            o.action,
            o.quantity,
            o.order_type,
            o.limit_price,
            "",
            o.tif,
            "",
            o.account,
            "",
            0,
            o.order_ref,
            o.perm_id,
            0,
            0,
            "",
            "",
            "",
            "",
            "",
            "",  # faProfile (server version < 177)
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",  # modelCode .. exemptCode
            "",
            "",
            "",
            "",
            "",
            "",
            0,
            0,
            "",
            0,
            0,
            "",
            0,  # startingPrice .. volatilityType
            "",
            "",  # deltaNeutralOrderType, deltaNeutralAuxPrice
            "",
            "",
            "",
            "",
            "",  # continuousUpdate .. comboLegsDescrip
            0,
            0,
            0,
            "",
            "",
            "",
            "",  # hedgeType
            "",
            "",
            0,
            0,  # clearingAccount, clearingIntent, notHeld, dnc
            "",  # algoStrategy
            0,
            o.status,
            0,
            0,
            0,  # conditions
            "",
            "",
            "",
            0,
            0,
            "",
            o.filled,
            0,
            0,
            "",
            0,
            0,
            0,
            o.completed_time,
            o.completed_status,
        ]

    def _execution_fields(self, req_id: int, e: FakeExecution) -> list[Any]:
        o = e.order
        return [
            11,
            req_id,
            o.order_id,
            *self._contract11(o.symbol, o.sec_type, o.exchange, o.currency),
            e.exec_id,
            e.time.strftime("%Y%m%d %H:%M:%S UTC"),
            o.account,
            "ISLAND",
            "BOT" if o.action == "BUY" else "SLD",
            e.shares,
            e.price,
            o.perm_id,
            o.client_id,
            0,
            e.cum_qty,
            e.avg_price,
            o.order_ref,
            "",
            "",
            "",
            1,
        ]

    def _commission_fields(self, e: FakeExecution) -> list[Any]:
        return [59, 1, e.exec_id, e.commission, e.commission_currency, "", "", ""]

    def _position_fields(self, p: FakePosition) -> list[Any]:
        return [
            61,
            3,
            p.account,
            p.con_id,
            p.symbol,
            "STK",
            "",
            "",
            "",
            "",
            "SMART",
            p.currency,
            p.symbol,
            p.symbol,
            p.quantity,
            p.avg_cost,
        ]

    # --- market data internals (loop thread only) -----------------------------------------

    def _on_reqHistoricalData(self, session: _Session, fields: list[str]) -> None:
        # 20, reqId, contract (12 fields), includeExpired, endDateTime, barSize, duration,
        # useRTH, whatToShow, formatDate, keepUpToDate, chartOptions
        req_id, symbol = int(fields[1]), fields[3]
        end_text, bar_size, duration = fields[15], fields[16], fields[17]
        format_date = int(fields[20] or 1)
        if self._history_plans:
            kind, code, message = self._history_plans.popleft()
            if kind == "drop":
                session.writer.transport.abort()
                return
            if kind == "hold":
                return
            session.send(4, 2, req_id, code, message)
            return
        if fields[21] == "1":
            session.send(4, 2, req_id, 321, "TwsFake: keepUpToDate is not supported")
            return
        assert self._market_now is not None, "set_market_time before historical requests"
        end = _parse_ib_time(end_text) if end_text else self._market_now
        end = min(end, self._market_now)
        step = _bar_size_seconds(bar_size)
        start = _floor(end - timedelta(seconds=_duration_seconds(duration)), step)
        bars = []
        window = start
        while window < end:
            bar = self._aggregate(symbol, window, window + timedelta(seconds=step), end)
            if bar is not None:
                bars.append((window, bar))
            window += timedelta(seconds=step)
        if not bars:
            session.send(
                4,
                2,
                req_id,
                162,
                "Historical Market Data Service error message:HMDS query returned no data: "
                f"{symbol}@SMART Trades",
            )
            return
        out: list[Any] = [17, req_id, _ib_time(start), _ib_time(end), len(bars)]
        for ts, (o, h, lo, c, v) in bars:
            date = str(int(ts.timestamp())) if format_date == 2 else _ib_time(ts)
            out += [date, o, h, lo, c, v, c, 1]
        session.send(*out)

    def _on_cancelHistoricalData(self, session: _Session, fields: list[str]) -> None:
        pass

    def _on_reqRealTimeBars(self, session: _Session, fields: list[str]) -> None:
        # 50, 3, reqId, contract (12 fields), barSize, whatToShow, useRTH, options
        req_id, symbol = int(fields[2]), fields[4]
        if self._realtime_plans:
            code, message = self._realtime_plans.popleft()
            session.send(4, 2, req_id, code, message)
            return
        if fields[15] != "5":
            session.send(4, 2, req_id, 420, "Invalid Real-time Query: bar size must be 5")
            return
        session.realtime[req_id] = symbol

    def _on_cancelRealTimeBars(self, session: _Session, fields: list[str]) -> None:
        session.realtime.pop(int(fields[2]), None)

    def _last_close(self, symbol: str, before: datetime) -> Decimal | None:
        keys = self._minute_keys.get(symbol, [])
        i = bisect.bisect_left(keys, before)
        return self._minutes[symbol][keys[i - 1]][3] if i else None

    def _five_second_bar(self, symbol: str, slot: datetime) -> tuple[Decimal, ...] | None:
        """The 5-second bar of ``slot`` TWS would send: part of the recorded minute, or a
        zero-volume bar at the last price in a minute without trades (None before any)."""
        minute = _floor(slot, 60)
        row = self._minutes.get(symbol, {}).get(minute)
        if row is not None:
            return split_minute(row)[int((slot - minute).total_seconds()) // 5]
        last = self._last_close(symbol, minute)
        if last is None:
            return None
        return (last, last, last, last, Decimal(0))

    def _aggregate(
        self, symbol: str, start: datetime, end: datetime, now: datetime
    ) -> tuple[Decimal, ...] | None:
        """One historical bar [start, end) as of ``now``: the minutes that traded in it, the
        minute in progress only up to its last closed 5-second bar (TWS sends the bar in
        progress too)."""
        parts: list[tuple[Decimal, ...]] = []
        keys = self._minute_keys.get(symbol, [])
        for minute in keys[bisect.bisect_left(keys, start) : bisect.bisect_left(keys, end)]:
            if minute + timedelta(minutes=1) <= now:
                parts.append(self._minutes[symbol][minute])
            elif minute < now:
                done = int((now - minute).total_seconds()) // 5
                parts += [b for b in split_minute(self._minutes[symbol][minute])[:done] if b[4] > 0]
        if not parts:
            return None
        return (
            parts[0][0],
            max(p[1] for p in parts),
            min(p[2] for p in parts),
            parts[-1][3],
            sum((p[4] for p in parts), Decimal(0)),
        )

    @staticmethod
    def _realtime_bar_fields(
        req_id: int, ts: datetime, bar: tuple[Decimal, ...], *, count: int | None = None
    ) -> list[Any]:
        o, h, lo, c, v = bar
        trades = count if count is not None else (1 if v > 0 else 0)
        return [50, 3, req_id, int(ts.timestamp()), o, h, lo, c, v, c, trades]


def read_minutes(path: Path) -> list[tuple[datetime, tuple[Decimal, ...]]]:
    """Rows of a shared-data OHLCV CSV as (open time, (open, high, low, close, volume))."""
    with path.open(newline="") as handle:
        return [
            (
                datetime.strptime(row["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                tuple(Decimal(row[k]) for k in ("open", "high", "low", "close", "volume")),
            )
            for row in csv.DictReader(handle)
        ]


def split_minute(row: tuple[Decimal, ...]) -> list[tuple[Decimal, ...]]:
    """A recorded minute as the 12 five-second bars TWS would have sent for it: open, high,
    low and close are reached in different bars, and their aggregate (first open, highest
    high, lowest low, last close, summed volume) is the minute exactly. With fewer than 12
    shares traded, the first bar carries the whole minute and the rest are zero-volume."""
    o, h, lo, c, v = row
    if v < 12:
        return [(o, h, lo, c, v)] + [(c, c, c, c, Decimal(0))] * 11
    part = (v / 12).to_integral_value(rounding=ROUND_FLOOR)
    volumes = [part] * 11 + [v - part * 11]
    prices = (
        [(o, o, o, o)]
        + [(o, h, o, o)] * 4
        + [(o, o, lo, o)] * 4
        + [(o, max(o, c), min(o, c), c)] * 2
        + [(c, c, c, c)]
    )
    return [(*p, vol) for p, vol in zip(prices, volumes, strict=True)]


def _floor(ts: datetime, seconds: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _ib_time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y%m%d %H:%M:%S UTC")


def _parse_ib_time(text: str) -> datetime:
    """endDateTime as ib_async sends a tz-aware datetime ("YYYYMMDD-HH:MM:SS", UTC) or
    with an explicit "UTC" suffix."""
    text = text.replace(" UTC", "").strip()
    for fmt in ("%Y%m%d-%H:%M:%S", "%Y%m%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"TwsFake: endDateTime {text!r} not understood")


_UNIT_SECONDS = {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600}


def _bar_size_seconds(text: str) -> int:
    number, unit = text.split()
    return int(number) * _UNIT_SECONDS[unit]


def _duration_seconds(text: str) -> int:
    number, unit = text.split()
    return int(number) * {"S": 1, "D": 86400, "W": 7 * 86400}[unit]
