"""``IbkrVenue``: the ``Venue`` protocol over TWS / IB Gateway (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ib_async import ExecutionFilter, LimitOrder, MarketOrder, Stock
from ib_async.ib import StartupFetch
from ib_async.order import Order as IbOrder
from ib_async.order import OrderStatus as IbStatus
from ib_async.order import Trade
from ib_async.wrapper import RequestError

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
from apps.trading.venues.ibkr.errors import NOTICE_CODES, ORDER_CANCELLED, _error_class
from apps.trading.venues.ibkr.mapping import _dec, _perm_id, order_status_map
from apps.trading.venues.ibkr.session import (
    _SESSIONS,
    _SESSIONS_LOCK,
    BROKER,
    IbkrSession,
    _session,
)

logger = logging.getLogger(__name__)

PAPER_ACCOUNT_PREFIX = "DU"

CANCEL_GRACE_SECONDS = 1.0  # how long cancel() waits for IB to confirm or refuse
COMMISSION_GRACE_SECONDS = 1.0  # commission reports may trail the executions' end

_T = TypeVar("_T")


class IbkrVenue:
    """One IB account through TWS / IB Gateway (see the package docstring)."""

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

    def fill_at_mark(self, order: VenueOrder, *, mark: Decimal, ts: datetime) -> None:
        """IBKR reports the fills of an emergency close itself (they come in later)."""
        return None

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

    def _ensure(self) -> IbkrSession:
        session = _session(self.host, self.port, self.client_id, create=True)
        assert session is not None
        with session.lock:
            if not session.connected():
                self._connect(session)
        return session

    def _connect(self, session: IbkrSession) -> None:
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
    def _disconnect(session: IbkrSession) -> None:
        try:
            with session.on_loop():
                session.ib.disconnect()
        except Exception:  # a half-open socket may fail to close; the session is reset anyway
            logger.exception("IBKR: disconnect after a failed connect")

    def _refuse_if_link_lost(self, session: IbkrSession, what: str) -> None:
        if session.link_lost:
            raise VenueTemporaryError(
                f"IBKR {what}: TWS has lost its connection to IB (1100) and has not restored it"
            )

    def _run(
        self,
        session: IbkrSession,
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

    def _session_trade(self, session: IbkrSession, order: VenueOrder) -> Trade | None:
        """Our order as this session knows it: by permId, else by orderRef (open first)."""
        trades = list(session.ib.wrapper.trades.values())
        if order.broker_order_id:
            for trade in trades:
                if str(_perm_id(trade)) == order.broker_order_id:
                    return trade
        mine = [t for t in trades if t.order.orderRef == order.client_order_id]
        mine.sort(key=lambda t: t.isDone())
        return mine[0] if mine else None

    async def _await_ack(self, session: IbkrSession, trade: Trade, order: VenueOrder) -> VenueAck:
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
    def _refusal(session: IbkrSession, order_id: int, *, during_submit: bool) -> VenueError | None:
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
        self, session: IbkrSession, trade: Trade, *, completed: bool = False
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
