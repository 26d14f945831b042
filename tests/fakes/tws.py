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

The server runs its own asyncio loop in a daemon thread; every public method is
thread-safe (it runs on that loop and waits for the result), so tests and bench
scripts drive it from the main thread while ib_async runs its own loop there.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
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
    49: "reqCurrentTime",
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
    }

    def send_malformed(self, kind: str = "garbage") -> None:
        """Send one malformed message (see ``MALFORMED``), framed correctly."""
        self.send_raw(self.MALFORMED[kind])

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
        session.send(49, 1, int(time.time()))

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
