"""``KrakenVenue``: the ``Venue`` protocol over Kraken's REST API (see the package docstring)."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import ccxt

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
from apps.trading.venues.kraken.client import kraken_client
from apps.trading.venues.kraken.errors import (
    _CONFIGURATION_ERRORS,
    _REJECTION_ERRORS,
    _TEMPORARY_ERRORS,
    _UNKNOWN_ORDER,
    error_code,
    kraken_errors,
)
from apps.trading.venues.kraken.ids import kraken_client_order_id, our_client_order_id
from apps.trading.venues.kraken.mapping import (
    SymbolMap,
    _dec,
    _dict,
    _Malformed,
    _str,
    order_status_from_kraken,
)
from apps.trading.venues.metrics import BROKER_MALFORMED_MESSAGES

logger = logging.getLogger(__name__)

BROKER = "kraken"  # apps.accounts.models.Broker.KRAKEN (not imported: no Django needed here)

DEAD_MAN_REFRESH_RANGE = (15, 30)  # seconds: Kraken's advice for a 60 s timer
QUERY_ORDERS_BATCH = 20  # txids per QueryOrders call (Kraken allows 50; ccxt documents 20)
MAX_HISTORY_PAGES = 200  # 50 trades a page: 10,000 trades per fills_since at most

T = TypeVar("T")


class KrakenVenue:
    """One Kraken spot account. Every call is synchronous and may raise ``VenueError``."""

    name = BROKER
    # Kraken confirms a cancel in the order's status: the order waits in PENDING_CANCEL.
    cancel_is_immediate = False

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        api_url: str | None = None,
        timeout_seconds: float = 10.0,
        dead_man_timeout_seconds: int = 60,
        dead_man_refresh_seconds: float = 20,
        instruments: Iterable[str] = (),
        rate_limit: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not api_key or not api_secret:
            raise VenueConfigurationError("kraken: api_key and api_secret are required")
        try:
            secret_ok = len(base64.b64decode(api_secret, validate=True)) > 0
        except (binascii.Error, ValueError):
            secret_ok = False
        if not secret_ok:
            raise VenueConfigurationError("kraken: api_secret is not base64 (copy it from Kraken)")
        if timeout_seconds <= 0:
            raise VenueConfigurationError(
                f"kraken: timeout_seconds must be > 0, not {timeout_seconds}"
            )
        low, high = DEAD_MAN_REFRESH_RANGE
        if not low <= dead_man_refresh_seconds <= high:
            raise VenueConfigurationError(
                f"kraken: dead_man_refresh_seconds must be within {low}-{high}, "
                f"not {dead_man_refresh_seconds}"
            )
        if dead_man_timeout_seconds and not (
            dead_man_refresh_seconds < dead_man_timeout_seconds <= 86400
        ):
            raise VenueConfigurationError(
                "kraken: dead_man_timeout_seconds must exceed dead_man_refresh_seconds "
                f"({dead_man_refresh_seconds}) and be at most 86400, or 0 to disable it; "
                f"not {dead_man_timeout_seconds}"
            )
        self._exchange = kraken_client(
            api_url=api_url,
            timeout_seconds=timeout_seconds,
            rate_limit=rate_limit,
            api_key=api_key,
            api_secret=api_secret,
        )
        try:
            self._symbols = SymbolMap(instruments, self._exchange.safe_currency_code)
        except ValueError as exc:
            raise VenueConfigurationError(f"kraken: {exc}") from exc
        self._dead_man_timeout = int(dead_man_timeout_seconds or 0)
        self._dead_man_refresh = dead_man_refresh_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self._state = ConnectionState.DISCONNECTED
        self._dead_man_armed = False
        self._dead_man_refreshed_at: float | None = None

    # -- session ------------------------------------------------------------------

    def connection_state(self) -> ConnectionState:
        return self._state

    def connect(self) -> None:
        """Load Kraken's markets, prove the key with one private call, arm the dead man."""
        with self._lock:
            self._state = ConnectionState.CONNECTING
            try:
                self._request("load markets", lambda: self._exchange.load_markets(reload=True))
                unknown = [
                    s
                    for s in self._symbols.instruments
                    if self._ccxt_symbol(s) not in self._markets()
                ]
                if unknown:
                    raise VenueConfigurationError(
                        f"kraken: no Kraken market for instrument(s) {', '.join(unknown)}"
                    )
                self._request("BalanceEx", lambda: self._exchange.privatePostBalanceEx())
                if self._dead_man_timeout:
                    self._dead_man_set(self._dead_man_timeout)
            except VenueError:
                self._state = ConnectionState.DISCONNECTED
                raise
            self._state = ConnectionState.CONNECTED

    def heartbeat(self) -> None:
        """Prove the session is alive; refresh the dead man when its last refresh is old.

        A disconnected venue reconnects here (the heartbeat is the reconnect loop). A
        refresh is a private call, so it proves the key too; between refreshes the
        proof is Kraken's public ``Time`` (cheap for the rate limit).
        """
        with self._lock:
            if self._state is not ConnectionState.CONNECTED:
                self.connect()
                return
            if self._dead_man_armed and self._dead_man_due():
                self._dead_man_set(self._dead_man_timeout)
                return
            self._request("Time", lambda: _dict(self._exchange.publicGetTime()["result"], "result"))

    def fill_at_mark(self, order: VenueOrder, *, mark: Decimal, ts: datetime) -> None:
        """Kraken reports the fills of an emergency close itself (they come in later)."""
        return None

    def close(self) -> None:
        """Disarm the dead man this instance armed (best effort) and mark the venue closed."""
        with self._lock:
            if self._dead_man_armed:
                try:
                    self._dead_man_set(0)
                except VenueError as exc:
                    # Not disarmed: Kraken cancels every open order when the timer runs out,
                    # the safe direction. Closing must not fail because of it.
                    logger.warning("kraken: dead-man switch not disarmed on close: %s", exc)
            self._dead_man_armed = False
            self._state = ConnectionState.DISCONNECTED

    @property
    def dead_man_armed(self) -> bool:
        return self._dead_man_armed

    def _dead_man_due(self) -> bool:
        last = self._dead_man_refreshed_at
        return last is None or self._clock() - last >= self._dead_man_refresh

    def _dead_man_set(self, timeout: int) -> None:
        def call() -> dict[str, Any]:
            response = self._exchange.cancel_all_orders_after(timeout * 1000)
            result = _dict(_dict(response, "response").get("result"), "result")
            _str(result.get("triggerTime"), "result.triggerTime")
            return result

        self._request("CancelAllOrdersAfter", call)
        self._dead_man_armed = timeout > 0
        self._dead_man_refreshed_at = self._clock() if timeout > 0 else None

    # -- orders -------------------------------------------------------------------

    def submit(self, order: VenueOrder) -> VenueAck:
        """Send ``order`` with our client id as Kraken's ``cl_ord_id``; return Kraken's txid."""
        with self._lock:
            self._ensure_markets()
            symbol = self._ccxt_symbol(order.instrument, order.base, order.quote)
            market = self._markets().get(symbol)
            if market is None:
                raise VenueRejected(
                    f"kraken: no Kraken market for {order.instrument} ({symbol})",
                    code="unknown_instrument",
                )
            try:
                cl_ord_id = kraken_client_order_id(order.client_order_id)
            except ValueError as exc:
                raise VenueRejected(f"kraken: {exc}", code="client_order_id") from exc
            if order.quantity <= 0:
                raise VenueRejected(
                    f"kraken: order {order.client_order_id} quantity must be > 0, "
                    f"not {order.quantity}",
                    code="quantity",
                )
            quantity = self._exact(
                "quantity", order.quantity, symbol, self._exchange.amount_to_precision
            )
            price: str | None = None
            if order.order_type is OrderType.LIMIT:
                if order.limit_price is None or order.limit_price <= 0:
                    raise VenueRejected(
                        f"kraken: limit order {order.client_order_id} has no positive limit price",
                        code="limit_price",
                    )
                price = self._exact(
                    "limit price", order.limit_price, symbol, self._exchange.price_to_precision
                )

            def call() -> VenueAck:
                created = self._exchange.create_order(
                    symbol,
                    order.order_type.value,
                    order.side.value,
                    quantity,
                    price,
                    {"clientOrderId": cl_ord_id},
                )
                info = _dict(created.get("info"), "result")
                txids = info.get("txid")
                if not isinstance(txids, list) or len(txids) != 1:
                    raise _Malformed(f"result.txid is {txids!r}, not one order id")
                return VenueAck(broker_order_id=_str(txids[0], "result.txid[0]"))

            return self._request("AddOrder", call)

    def cancel(self, order: VenueOrder) -> None:
        """Cancel by Kraken's txid when we have it, else by our client id."""
        with self._lock:
            self._ensure_markets()
            if order.broker_order_id:
                ident, params = order.broker_order_id, {}
            else:
                try:
                    params = {"clientOrderId": kraken_client_order_id(order.client_order_id)}
                except ValueError as exc:
                    raise VenueRejected(f"kraken: {exc}", code="client_order_id") from exc
                ident = None

            def call() -> None:
                response = self._exchange.cancel_order(ident, None, params)
                result = _dict(_dict(response.get("info"), "response").get("result"), "result")
                _dec(result.get("count"), "result.count")

            self._request("CancelOrder", call)

    def cancel_all(self) -> int:
        """Kraken's CancelAll (every open order of the account); returns Kraken's count."""
        with self._lock:
            self._ensure_markets()

            def call() -> int:
                response = self._exchange.cancel_all_orders()
                result = _dict(_dict(response[0].get("info"), "response").get("result"), "result")
                return int(_dec(result.get("count"), "result.count"))

            return self._request("CancelAll", call)

    def order_status(self, order: VenueOrder) -> BrokerOrder | None:
        """Kraken's view of ``order``, found by our client id, else by its txid.

        Open orders first, then closed ones (an order can close between the two calls,
        never the other way). None when Kraken never received it.
        """
        with self._lock:
            self._ensure_markets()
            try:
                cl_ord_id: str | None = kraken_client_order_id(order.client_order_id)
            except ValueError:
                cl_ord_id = None
            if cl_ord_id is not None:
                for endpoint, fetch in (
                    ("OpenOrders", self._exchange.fetch_open_orders),
                    ("ClosedOrders", self._exchange.fetch_closed_orders),
                ):
                    found = self._request(
                        endpoint,
                        lambda fetch=fetch: [
                            self._broker_order(o)
                            for o in fetch(None, None, None, {"clientOrderId": cl_ord_id})
                        ],
                    )
                    match = _pick(found, order)
                    if match is not None:
                        return match
            if order.broker_order_id:
                txid = order.broker_order_id
                try:
                    found = self._request(
                        "QueryOrders",
                        lambda: [
                            self._broker_order(o)
                            for o in self._exchange.fetch_orders_by_ids([txid])
                        ],
                    )
                except VenueRejected as exc:
                    if exc.code in _UNKNOWN_ORDER:
                        return None
                    raise
                return _pick(found, order)
            return None

    def open_orders(self) -> list[BrokerOrder]:
        """Every open order of the account, ours or not (``client_order_id`` None if not)."""
        with self._lock:
            self._ensure_markets()
            return self._request(
                "OpenOrders",
                lambda: [self._broker_order(o) for o in self._exchange.fetch_open_orders()],
            )

    def fills_since(self, since: datetime) -> list[BrokerFill]:
        """Executions at or after ``since`` (TradesHistory, every page), oldest first."""
        if since.tzinfo is None:
            raise ValueError("fills_since: since must be timezone-aware (UTC)")
        with self._lock:
            self._ensure_markets()
            # Kraken's start is exclusive and whole seconds here: ask from a second
            # earlier and keep what is at or after ``since``.
            start = int(since.timestamp()) - 1
            raw: dict[str, dict[str, Any]] = {}
            offset = 0
            for _ in range(MAX_HISTORY_PAGES):
                page, count = self._request(
                    "TradesHistory", lambda offset=offset: self._trades_page(start, offset)
                )
                raw.update(page)
                offset += len(page)
                if not page or offset >= count:
                    break
            else:
                logger.warning(
                    "kraken fills_since(%s): stopped after %d pages", since, MAX_HISTORY_PAGES
                )
            fills = self._request(
                "TradesHistory", lambda: [self._fill(tid, t) for tid, t in raw.items()]
            )
            fills = [f for f in fills if f.ts >= since]
            client_ids = self._client_ids({f.broker_order_id for f in fills})
            fills = [
                BrokerFill(
                    trade_id=f.trade_id,
                    broker_order_id=f.broker_order_id,
                    client_order_id=client_ids.get(f.broker_order_id),
                    instrument=f.instrument,
                    side=f.side,
                    quantity=f.quantity,
                    price=f.price,
                    fee=f.fee,
                    ts=f.ts,
                )
                for f in fills
            ]
            return sorted(fills, key=lambda f: (f.ts, f.trade_id))

    # -- account ------------------------------------------------------------------

    def positions(self) -> list[BrokerPosition]:
        """Spot: the non-zero balance of each configured instrument's base asset.

        When two instruments share a base (BTC-USD, BTC-EUR), the coin is reported once,
        under the first of them in ``instruments``.
        """
        with self._lock:
            totals = {code: total for code, (total, _hold) in self._balance_ex().items()}
            positions: list[BrokerPosition] = []
            seen: set[str] = set()
            for symbol in self._symbols.instruments:
                code = self._symbols.base_code(symbol)
                if code in seen:
                    continue
                seen.add(code)
                quantity = totals.get(code, Decimal(0))
                if quantity != 0:
                    positions.append(BrokerPosition(instrument=symbol, quantity=quantity))
            return positions

    def balances(self) -> list[BrokerBalance]:
        """Every asset Kraken lists: total and available (total minus what open orders hold)."""
        with self._lock:
            return [
                BrokerBalance(
                    currency=self._symbols.currency(code), total=total, available=total - hold
                )
                for code, (total, hold) in sorted(self._balance_ex().items())
            ]

    # -- internals ----------------------------------------------------------------

    def _request(self, what: str, call: Callable[[], T]) -> T:
        """Run one ccxt call (and the parsing of its answer), errors translated to ours."""
        try:
            return call()
        except VenueError:
            raise
        except ccxt.BadResponse as exc:
            raise self._malformed(what, str(exc)) from exc
        except ccxt.BaseError as exc:
            raise self._translate(what, exc) from exc
        except (
            _Malformed,
            KeyError,
            IndexError,
            TypeError,
            ValueError,
            AttributeError,
            ArithmeticError,
        ) as exc:
            raise self._malformed(what, f"{type(exc).__name__}: {exc}") from exc

    def _malformed(self, what: str, detail: str) -> VenueTemporaryError:
        BROKER_MALFORMED_MESSAGES.labels(broker=BROKER).inc()
        logger.error("kraken %s: malformed response: %s", what, detail)
        return VenueTemporaryError(f"kraken {what}: malformed response from Kraken: {detail}")

    def _translate(self, what: str, exc: ccxt.BaseError) -> VenueError:
        errors = kraken_errors(str(exc))
        first = errors[0] if errors else ""
        reason = "; ".join(errors) if errors else str(exc)[:500]
        message = f"kraken {what}: {reason}"
        if first.startswith(_CONFIGURATION_ERRORS) or (
            not first and isinstance(exc, ccxt.AuthenticationError)
        ):
            return VenueConfigurationError(message)
        network = isinstance(exc, ccxt.RequestTimeout | ccxt.ExchangeNotAvailable) or (
            type(exc) is ccxt.NetworkError
        )
        if network:
            self._state = ConnectionState.DISCONNECTED
        if first.startswith(_TEMPORARY_ERRORS) or (
            not first and isinstance(exc, ccxt.NetworkError)
        ):
            return VenueTemporaryError(message)
        if first.startswith(_REJECTION_ERRORS):
            return VenueRejected(message, code=error_code(first))
        if not first and isinstance(
            exc, ccxt.InvalidOrder | ccxt.InsufficientFunds | ccxt.BadRequest
        ):
            # ccxt refused before sending (e.g. an amount below the market's precision).
            return VenueRejected(message, code=type(exc).__name__)
        # An error we cannot classify: the outcome is unknown, so never "rejected".
        return VenueTemporaryError(message)

    def _ensure_markets(self) -> None:
        if not self._exchange.markets:
            self._request("load markets", lambda: self._exchange.load_markets())

    def _markets(self) -> dict[str, Any]:
        return self._exchange.markets or {}

    def _ccxt_symbol(self, symbol: str, base: str | None = None, quote: str | None = None) -> str:
        try:
            return self._symbols.add(symbol, base, quote)
        except ValueError as exc:
            raise VenueRejected(f"kraken: {exc}", code="unknown_instrument") from exc

    def _exact(
        self, what: str, value: Decimal, symbol: str, to_precision: Callable[[str, str], str]
    ) -> str:
        """``value`` as Kraken will take it, or VenueRejected if Kraken would round it."""
        text = format(value, "f")
        sent = self._request(f"{what} precision", lambda: to_precision(symbol, text))
        if Decimal(sent) != value:
            raise VenueRejected(
                f"kraken: {what} {text} has more decimals than Kraken allows for {symbol} "
                f"(it would send {sent})",
                code="precision",
            )
        return sent

    def _broker_order(self, parsed: dict[str, Any]) -> BrokerOrder:
        info = _dict(parsed.get("info"), "order")
        descr = _dict(info.get("descr"), "order.descr")
        txid = _str(parsed.get("id"), "order id")
        quantity = _dec(info.get("vol"), f"order {txid}.vol")
        filled = _dec(info.get("vol_exec"), f"order {txid}.vol_exec")
        try:
            status = order_status_from_kraken(_str(info.get("status"), "status"), filled, quantity)
        except ValueError as exc:
            raise _Malformed(f"order {txid}: {exc}") from exc
        kraken_type = _str(descr.get("ordertype"), f"order {txid}.descr.ordertype")
        order_type = OrderType.LIMIT if "limit" in kraken_type else OrderType.MARKET
        limit_price = None
        if order_type is OrderType.LIMIT:
            limit_price = _dec(descr.get("price"), f"order {txid}.descr.price") or None
        average = _dec(info.get("price", "0"), f"order {txid}.price")
        return BrokerOrder(
            broker_order_id=txid,
            client_order_id=our_client_order_id(info.get("cl_ord_id")),
            instrument=self._symbols.to_ours(_str(parsed.get("symbol"), f"order {txid} pair")),
            side=Side(_str(descr.get("type"), f"order {txid}.descr.type")),
            order_type=order_type,
            quantity=quantity,
            filled_quantity=filled,
            status=status,
            limit_price=limit_price,
            avg_fill_price=average if filled > 0 and average > 0 else None,
            reason=info.get("reason") or "",
        )

    def _trades_page(self, start: int, offset: int) -> tuple[dict[str, dict[str, Any]], int]:
        response = self._exchange.privatePostTradesHistory({"start": start, "ofs": offset})
        result = _dict(_dict(response, "response").get("result"), "result")
        trades = _dict(result.get("trades"), "result.trades")
        count = int(_dec(result.get("count"), "result.count"))
        return {tid: _dict(t, f"trade {tid}") for tid, t in trades.items()}, count

    def _fill(self, trade_id: str, trade: dict[str, Any]) -> BrokerFill:
        pair = _str(trade.get("pair"), f"trade {trade_id}.pair")
        market = self._exchange.resolve_market_by_altname_or_id(pair)
        if not market or not market.get("symbol"):
            raise _Malformed(f"trade {trade_id}: unknown pair {pair!r}")
        when = _dec(trade.get("time"), f"trade {trade_id}.time")
        return BrokerFill(
            trade_id=trade_id,
            broker_order_id=_str(trade.get("ordertxid"), f"trade {trade_id}.ordertxid"),
            client_order_id=None,
            instrument=self._symbols.to_ours(market["symbol"]),
            side=Side(_str(trade.get("type"), f"trade {trade_id}.type")),
            quantity=_dec(trade.get("vol"), f"trade {trade_id}.vol"),
            price=_dec(trade.get("price"), f"trade {trade_id}.price"),
            fee=_dec(trade.get("fee"), f"trade {trade_id}.fee"),
            ts=datetime.fromtimestamp(float(when), tz=UTC),
        )

    def _client_ids(self, txids: set[str]) -> dict[str, str | None]:
        """Our client id of each order (TradesHistory does not carry it; QueryOrders does)."""
        ids = sorted(txids)
        found: dict[str, str | None] = {}
        for i in range(0, len(ids), QUERY_ORDERS_BATCH):
            batch = ids[i : i + QUERY_ORDERS_BATCH]
            try:
                found.update(self._query_client_ids(batch))
            except VenueRejected as exc:
                if exc.code not in _UNKNOWN_ORDER:
                    raise
                # One unknown txid fails the whole batch: ask one by one, skip the unknown.
                for txid in batch:
                    try:
                        found.update(self._query_client_ids([txid]))
                    except VenueRejected as one:
                        if one.code not in _UNKNOWN_ORDER:
                            raise
                        found[txid] = None
        return found

    def _query_client_ids(self, txids: list[str]) -> dict[str, str | None]:
        def call() -> dict[str, str | None]:
            orders = self._exchange.fetch_orders_by_ids(txids)
            return {
                _str(o.get("id"), "order id"): our_client_order_id(
                    _dict(o.get("info"), "order").get("cl_ord_id")
                )
                for o in orders
            }

        return self._request("QueryOrders", call)

    def _balance_ex(self) -> dict[str, tuple[Decimal, Decimal]]:
        """ccxt currency code -> (balance, held by open orders), from Kraken's BalanceEx."""
        self._ensure_markets()

        def call() -> dict[str, tuple[Decimal, Decimal]]:
            response = self._exchange.privatePostBalanceEx()
            result = _dict(_dict(response, "response").get("result"), "result")
            totals: dict[str, tuple[Decimal, Decimal]] = {}
            for asset, entry in result.items():
                entry = _dict(entry, f"balance {asset}")
                code = self._exchange.safe_currency_code(asset)
                balance = _dec(entry.get("balance"), f"{asset}.balance")
                hold = _dec(entry.get("hold_trade", "0"), f"{asset}.hold_trade")
                total, held = totals.get(code, (Decimal(0), Decimal(0)))
                totals[code] = (total + balance, held + hold)
            return totals

        return self._request("BalanceEx", call)


def _pick(found: list[BrokerOrder], order: VenueOrder) -> BrokerOrder | None:
    """The order among ``found`` that is ``order``: by txid when known, else the open one,
    else the most recent (Kraken lists closed orders newest first)."""
    if not found:
        return None
    if order.broker_order_id:
        # Kraken's txid is unique for ever; a client id only among open orders.
        return next((o for o in found if o.broker_order_id == order.broker_order_id), None)
    if len(found) > 1:
        logger.warning(
            "kraken: %d orders carry client id %s: %s",
            len(found),
            order.client_order_id,
            ", ".join(o.broker_order_id for o in found),
        )
    open_ = [o for o in found if o.status.is_open]
    return (open_ or found)[0]
