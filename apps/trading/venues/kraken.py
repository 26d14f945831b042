"""Kraken spot through ccxt (sync): the ``Venue`` protocol over Kraken's REST API.

ccxt does the transport, the request signing, the nonces, the market and currency
tables (Kraken's XXBT/XBT/ZUSD aliases) and the first sorting of errors into its
exception classes. This adapter adds what a trading system needs on top:

- **Our ids at Kraken.** Every order carries our client order id as Kraken's
  ``cl_ord_id``, so an order whose ack was lost is found again by our id (open
  orders, then closed orders, then by Kraken's txid when we have it). Kraken accepts a
  ``cl_ord_id`` in three shapes only (a long UUID, 32 hex digits, or free text of at
  most 18 characters) and our ids are ``tb-<32 hex>`` and ``tb-kill-<32 hex>``: the
  first goes as a long UUID, the second as the bare 32 hex digits, so the mapping is
  exact both ways. Kraken checks that id only among OPEN orders; our database is
  what prevents a second send.
- **Exact numbers.** Quantities, prices and fees are read from Kraken's own strings
  into ``Decimal`` (never through ccxt's floats), and an order whose quantity or
  price has more decimals than Kraken's pair allows is refused before sending
  (ccxt would silently truncate it, and the order at Kraken would differ from ours).
- **Errors by what the caller must do** (``VenueRejected`` / ``VenueTemporaryError`` /
  ``VenueConfigurationError``), always with Kraken's own message; a response that is
  not a well-formed Kraken envelope is counted in
  ``broker_malformed_messages_total{broker="kraken"}`` and raised as temporary, never
  as a ``KeyError`` from deep inside the parsing.
- **The dead-man switch.** ``connect`` arms Kraken's ``CancelAllOrdersAfter`` (60 s by
  default), ``heartbeat`` refreshes it every 15-30 s, ``close`` disarms it. If the
  process dies or loses the network, Kraken cancels every open order by itself.
  Kraken has ONE such timer per API key: an instance built only to read (a
  reconciliation run, a runbook) must pass ``dead_man_timeout_seconds=0`` so that it
  neither arms nor, on close, disarms the trading process's timer.

Spot only: ``reduce_only`` is not sent (Kraken honours it on margin orders only; a
spot sell can never exceed the balance anyway), so a kill-switch closing order is
never refused for carrying it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt

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

BROKER = "kraken"  # apps.accounts.models.Broker.KRAKEN (not imported: no Django needed here)

# Our client order ids (apps.trading.services.common.new_client_order_id and the kill switch's).
ORDER_ID_PREFIX = "tb-"
KILL_ORDER_ID_PREFIX = "tb-kill-"
_OUR_ID = re.compile(r"tb-([0-9a-f]{32})")
_OUR_KILL_ID = re.compile(r"tb-kill-([0-9a-f]{32})")
_LONG_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SHORT_UUID = re.compile(r"[0-9a-fA-F]{32}")
_FREE_TEXT = re.compile(r"[\x21-\x7e]{1,18}")

DEAD_MAN_REFRESH_RANGE = (15, 30)  # seconds: Kraken's advice for a 60 s timer
QUERY_ORDERS_BATCH = 20  # txids per QueryOrders call (Kraken allows 50; ccxt documents 20)
MAX_HISTORY_PAGES = 200  # 50 trades a page: 10,000 trades per fills_since at most

# Kraken error prefixes, in the order they are tried (the first that matches wins).
_CONFIGURATION_ERRORS = (
    "EAPI:Invalid key",
    "EAPI:Invalid signature",
    "EAPI:Feature disabled",
    "EGeneral:Permission denied",
    "ETrade:User Locked",
)
_TEMPORARY_ERRORS = (
    "EAPI:Rate limit exceeded",
    "EAPI:Invalid nonce",
    "EOrder:Rate limit exceeded",
    "EGeneral:Temporary lockout",
    "EGeneral:Too many requests",
    "EGeneral:Internal error",
    "EService:",
    "EDatabase:",
)
_REJECTION_ERRORS = ("EOrder:", "EGeneral:Invalid arguments", "EQuery:", "ETrade:", "EFunding:")
_UNKNOWN_ORDER = ("EOrder:Invalid order", "EOrder:Unknown order")

T = TypeVar("T")


# -- pure mappings (unit-tested without a network) -----------------------------------


def kraken_client_order_id(client_order_id: str) -> str:
    """Our client order id as a Kraken ``cl_ord_id`` (one of Kraken's three formats).

    ``tb-<hex>`` -> the long UUID of ``<hex>``; ``tb-kill-<hex>`` -> the 32 hex digits;
    any other id of at most 18 printable ASCII characters goes as free text.

    Raises ``ValueError`` for an id Kraken would refuse.
    """
    if match := _OUR_KILL_ID.fullmatch(client_order_id):
        return match.group(1)
    if match := _OUR_ID.fullmatch(client_order_id):
        return str(uuid.UUID(hex=match.group(1)))
    if _FREE_TEXT.fullmatch(client_order_id):
        return client_order_id
    raise ValueError(
        f"client order id {client_order_id!r} fits none of Kraken's cl_ord_id formats "
        "(tb-<32 hex>, tb-kill-<32 hex>, or at most 18 printable ASCII characters)"
    )


def our_client_order_id(cl_ord_id: str | None) -> str | None:
    """The inverse of ``kraken_client_order_id``; None when Kraken has no client id."""
    if not cl_ord_id:
        return None
    if _LONG_UUID.fullmatch(cl_ord_id):
        return ORDER_ID_PREFIX + cl_ord_id.replace("-", "").lower()
    if _SHORT_UUID.fullmatch(cl_ord_id):
        return KILL_ORDER_ID_PREFIX + cl_ord_id.lower()
    return cl_ord_id


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTC-USD"`` (or ``"BTC/USD"``) -> ``("BTC", "USD")``; ``ValueError`` otherwise."""
    parts = symbol.replace("/", "-").split("-")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(f"instrument symbol {symbol!r} is not of the form BASE-QUOTE")
    return parts[0].strip().upper(), parts[1].strip().upper()


class SymbolMap:
    """Our ``BASE-QUOTE`` symbols <-> ccxt's ``BASE/QUOTE``, through ccxt's currency codes.

    ``currency_code`` is ccxt's ``safe_currency_code`` (XBT and XXBT -> BTC, ZUSD -> USD,
    plus what ``load_markets`` learnt from Kraken's Assets). Our configured
    instruments keep their own spelling on the way back: with ``XBT-USD`` configured,
    ccxt's ``BTC/USD`` maps to ``XBT-USD``; an unknown market maps to ``BASE-QUOTE``.
    """

    def __init__(self, instruments: Iterable[str], currency_code: Callable[[str], str]) -> None:
        self._code = currency_code
        self._ours: dict[str, str] = {}  # ccxt symbol -> our symbol
        self._currency: dict[str, str] = {}  # ccxt code -> our spelling
        self.instruments: list[str] = []
        for symbol in instruments:
            self.add(symbol)

    def add(self, symbol: str, base: str | None = None, quote: str | None = None) -> str:
        """Register one of our symbols; return its ccxt symbol."""
        if base is None or quote is None:
            base, quote = split_symbol(symbol)
        ccxt_symbol = self.to_ccxt(base, quote)
        if ccxt_symbol not in self._ours:
            self._ours[ccxt_symbol] = symbol
            self.instruments.append(symbol)
        for ours in (base.upper(), quote.upper()):
            self._currency.setdefault(self._code(ours), ours)
        return ccxt_symbol

    def to_ccxt(self, base: str, quote: str) -> str:
        return f"{self._code(base.upper())}/{self._code(quote.upper())}"

    def to_ours(self, ccxt_symbol: str) -> str:
        if ccxt_symbol in self._ours:
            return self._ours[ccxt_symbol]
        base, quote = split_symbol(ccxt_symbol)
        return f"{base}-{quote}"

    def currency(self, code: str) -> str:
        """A ccxt currency code in our spelling (``BTC`` stays ``BTC`` unless we say ``XBT``)."""
        return self._currency.get(code, code)

    def base_code(self, symbol: str) -> str:
        return self._code(split_symbol(symbol)[0])


def order_status_from_kraken(status: str, filled: Decimal, quantity: Decimal) -> OrderStatus:
    """Kraken's order status on our state machine.

    ``closed`` is Kraken's "done": FILLED when all of it executed, otherwise CANCELED
    (a market order that ran out of book). ``ValueError`` for a status Kraken does not have.
    """
    if status in ("pending", "open"):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    if status == "closed":
        return OrderStatus.FILLED if filled >= quantity else OrderStatus.CANCELED
    if status == "canceled":
        return OrderStatus.CANCELED
    if status == "expired":
        return OrderStatus.EXPIRED
    raise ValueError(f"unknown Kraken order status {status!r}")


def kraken_errors(message: str) -> list[str]:
    """Kraken's error strings inside a ccxt exception message (``kraken {"error": [...]}``)."""
    start = message.find("{")
    if start >= 0:
        try:
            payload = json.loads(message[start:])
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), list):
            return [e for e in payload["error"] if isinstance(e, str)]
    return re.findall(
        r"\b([EW](?:API|General|Query|Order|Trade|Funding|Service|Database|Session)"
        r":[^\"',\]]*)",
        message,
    )


def error_code(error: str) -> str:
    """``"EGeneral:Invalid arguments:volume"`` -> ``"EGeneral:Invalid arguments"``."""
    return ":".join(error.split(":")[:2])


# -- ccxt, with the one check it lacks ------------------------------------------------


class _KrakenClient(ccxt.kraken):
    """ccxt's Kraken, refusing a 2xx answer that is not a Kraken envelope.

    Left alone, ccxt hands a non-JSON body (or JSON without ``result``) to the
    parsers, whose ``safe_*`` lookups turn it into an empty answer: an order list that
    is silently empty. A ``BadResponse`` here makes it an error instead.
    """

    def handle_errors(self, code, reason, url, method, headers, body, response, *args):  # noqa: ANN001, ANN201
        super().handle_errors(code, reason, url, method, headers, body, response, *args)
        if 200 <= int(code) < 300 and not (
            isinstance(response, dict)
            and isinstance(response.get("error"), list)
            and isinstance(response.get("result"), dict | list)
        ):
            snippet = (body or "")[:200]
            raise ccxt.BadResponse(f"kraken {method} {url}: not a Kraken envelope: {snippet!r}")
        return None


def _check_api_url(api_url: str) -> None:
    """https, or plain http to this machine only (the signed key must not cross a network)."""
    url = urlsplit(api_url)
    loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
    if (
        not url.hostname
        or url.scheme not in ("http", "https")
        or (url.scheme == "http" and not loopback)
    ):
        raise VenueConfigurationError(
            f"kraken: api_url {api_url!r} must be https://HOST, or http:// to 127.0.0.1/localhost"
        )


class _Malformed(Exception):
    """A field missing or unreadable in a Kraken answer (raised while parsing)."""


def _dec(value: Any, what: str) -> Decimal:
    if value is None or isinstance(value, bool):
        raise _Malformed(f"{what} is missing")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _Malformed(f"{what} is not a number: {value!r}") from None
    if not number.is_finite():
        raise _Malformed(f"{what} is not a finite number: {value!r}")
    return number


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{what} is missing")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is missing")
    return value


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
        self._exchange = _KrakenClient(
            {
                "apiKey": api_key,
                "secret": api_secret,
                "timeout": int(timeout_seconds * 1000),
                "enableRateLimit": rate_limit,
            }
        )
        if api_url:
            _check_api_url(api_url)
            base = api_url.rstrip("/")
            self._exchange.urls["api"] = {
                **self._exchange.urls["api"],
                "public": base,
                "private": base,
            }
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
