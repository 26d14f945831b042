"""A loopback fake of Kraken's spot REST API, driven by the real ccxt client.

``KrakenFake`` is a threaded HTTP server on 127.0.0.1 (a free port) that implements
exactly what the Kraken adapter and ccxt's ``load_markets`` call:

- public ``Time``, ``SystemStatus``, ``Assets``, ``AssetPairs`` (BTC/USD, ETH/USD,
  ETH/BTC with Kraken's real ids, altnames and field shapes: XXBTZUSD / XBTUSD ...);
- public ``OHLC`` (``pair``, ``interval``, ``since``) served from a recorded candle file
  (``load_ohlc``) on the fake's own market clock (``market``): see "Market data" below;
- private ``Balance``, ``BalanceEx``, ``AddOrder``, ``CancelOrder``, ``CancelAll``,
  ``CancelAllOrdersAfter``, ``OpenOrders``, ``ClosedOrders``, ``QueryOrders``,
  ``TradesHistory``.

Private calls are authenticated as Kraken does: ``API-Key`` must be the account's key
and ``API-Sign`` the base64 HMAC-SHA512, keyed with the base64-decoded secret, of the
URI path followed by SHA256(nonce + POST data); nonces must strictly increase per
key. Errors come back in Kraken's envelope (``{"error": ["EAPI:Invalid nonce"],
"result": {}}``), with HTTP 200 as Kraken does.

Like Kraken, ``cl_ord_id`` is unique only among OPEN orders: a closed order's
client id can be used again, so what stops a duplicate send is our database, not
the broker. The dead-man switch (``CancelAllOrdersAfter``) really cancels every open
order when it expires; ``time_scale`` shrinks its seconds for tests (0.01: a
60-second timer fires after 0.6 s of real time).

The fake never matches orders by itself: the test fills them (``fill``). Order types
are ``market`` and ``limit`` only; ``reduce_only`` is recorded, not enforced. The
exact wording of two errors Kraken does not document is ours: a duplicate open
``cl_ord_id`` and a malformed one (both keep Kraken's ``EOrder:`` / ``EGeneral:``
categories).

Test controls (all thread-safe): ``fill``, ``cancel_behind_back``, ``set_balance``,
``add_foreign_order``, ``drop_order``, ``fail_next`` (any Kraken error string),
``rate_limit_next``, ``http_error_next``, ``malformed_next``, ``disconnect_next``,
``hold_next`` (record the order, then answer late or never), and the records
``add_order_calls``, ``orders_by_cl_ord_id``, ``order``, ``open_orders``,
``calls``/``calls_to``, ``dead_man_*``.

Market data. ``load_ohlc(pair, path)`` loads a recorded OHLCV CSV (``shared/data`` format)
as that pair's 1-minute (or other) candles; longer intervals are aggregated from them.
``OHLC`` answers in Kraken's exact shape (``{"error": [], "result": {"XXBTZUSD":
[[time, "open", "high", "low", "close", "vwap", "volume", count], ...], "last": time}}``)
as Kraken does: only the most recent ``ohlc_history`` (720) committed candles exist,
``since`` is exclusive (``time > since``), ``last`` is the open time of the newest
committed candle, and the current frame comes last, still forming. A frame is committed
``commit_lag`` market seconds after it closes; until then it is served as forming. A
forming candle is shown as at its first instant (O=H=L=C=open, volume 0), so a client
that emits it emits a bar unlike the file's. ``ohlc_page`` caps the committed candles
per answer (Kraken: 720) so that a client's paging can be tested. The file's prices and
volume go out as written; vwap (typical price) and count are the fake's inventions
(the Apache-2.0 files have neither). Minutes the file lacks stay missing (Kraken itself
would serve a flat zero-volume candle for them).
The market clock (``MarketClock``) is what ``OHLC`` and ``Time`` call "now": by default
real time; ``market.set(epoch, speed=600)`` runs it from ``epoch`` at 600x real time
(``speed=0`` holds it still until the test moves it).
OHLC controls: ``corrupt_next`` (let the test change the next answer's result before it
goes out), ``cut_next`` (send the headers and half the body, then close the socket),
``pass_next`` (answer the next call normally: queue it before a fault to hit a later
call), plus every fault control above (``disconnect_next``, ``malformed_next``,
``rate_limit_next``, ...), all by endpoint name ``"OHLC"``.

Use it as a context manager (``with KrakenFake() as fake: ...``) or from a pytest
fixture (``yield from kraken_fake_running()``); bench scripts import it the same way.
"""

from __future__ import annotations

import base64
import bisect
import csv
import hashlib
import hmac
import itertools
import json
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PAGE_SIZE = 50  # Kraken's page for ClosedOrders and TradesHistory
QUERY_ORDERS_MAX = 50
OHLC_HISTORY = 720  # Kraken keeps (and answers) the most recent 720 committed candles
OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)  # minutes, as Kraken lists them

ASSETS: dict[str, dict[str, Any]] = {
    "XXBT": {
        "aclass": "currency",
        "altname": "XBT",
        "decimals": 10,
        "display_decimals": 5,
        "collateral_value": 1.0,
        "status": "enabled",
    },
    "XETH": {
        "aclass": "currency",
        "altname": "ETH",
        "decimals": 10,
        "display_decimals": 5,
        "collateral_value": 1.0,
        "status": "enabled",
    },
    "ZUSD": {
        "aclass": "currency",
        "altname": "USD",
        "decimals": 4,
        "display_decimals": 2,
        "collateral_value": 1.0,
        "status": "enabled",
    },
}

_TAKER = [[0, 0.4], [10000, 0.35], [50000, 0.24], [100000, 0.22], [250000, 0.2]]
_MAKER = [[0, 0.25], [10000, 0.2], [50000, 0.14], [100000, 0.12], [250000, 0.1]]


def _pair(
    altname: str,
    wsname: str,
    base: str,
    quote: str,
    *,
    pair_decimals: int,
    cost_decimals: int,
    ordermin: str,
    costmin: str,
    tick_size: str,
) -> dict[str, Any]:
    return {
        "altname": altname,
        "wsname": wsname,
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "lot": "unit",
        "cost_decimals": cost_decimals,
        "pair_decimals": pair_decimals,
        "lot_decimals": 8,
        "lot_multiplier": 1,
        "leverage_buy": [2, 3, 4, 5],
        "leverage_sell": [2, 3, 4, 5],
        "fees": _TAKER,
        "fees_maker": _MAKER,
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": ordermin,
        "costmin": costmin,
        "tick_size": tick_size,
        "status": "online",
        "long_position_limit": 270,
        "short_position_limit": 180,
    }


ASSET_PAIRS: dict[str, dict[str, Any]] = {
    "XXBTZUSD": _pair(
        "XBTUSD",
        "XBT/USD",
        "XXBT",
        "ZUSD",
        pair_decimals=1,
        cost_decimals=5,
        ordermin="0.00005",
        costmin="0.5",
        tick_size="0.1",
    ),
    "XETHZUSD": _pair(
        "ETHUSD",
        "ETH/USD",
        "XETH",
        "ZUSD",
        pair_decimals=2,
        cost_decimals=5,
        ordermin="0.002",
        costmin="0.5",
        tick_size="0.01",
    ),
    "XETHXXBT": _pair(
        "ETHXBT",
        "ETH/XBT",
        "XETH",
        "XXBT",
        pair_decimals=5,
        cost_decimals=10,
        ordermin="0.002",
        costmin="0.00002",
        tick_size="0.00001",
    ),
}

# Our names for Kraken's asset ids (what a test may write: BTC, XBT or XXBT).
_ASSET_ALIASES = {"BTC": "XXBT", "XBT": "XXBT", "ETH": "XETH", "USD": "ZUSD"}

_LONG_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_SHORT_UUID = re.compile(r"[0-9a-fA-F]{32}")
_FREE_TEXT = re.compile(r"[\x21-\x7e]{1,18}")  # printable ASCII, no spaces


def valid_cl_ord_id(value: str) -> bool:
    """Kraken's three cl_ord_id formats: long UUID, short UUID (32 hex), free text <= 18."""
    return bool(
        _LONG_UUID.fullmatch(value) or _SHORT_UUID.fullmatch(value) or _FREE_TEXT.fullmatch(value)
    )


def asset_id(asset: str) -> str:
    """Kraken's id for ``asset`` ("BTC", "XBT" and "XXBT" are all "XXBT")."""
    asset = asset.upper()
    if asset in ASSETS:
        return asset
    if asset in _ASSET_ALIASES:
        return _ASSET_ALIASES[asset]
    raise ValueError(f"the Kraken fake knows no asset {asset!r} (it has {sorted(ASSETS)})")


def pair_id(pair: str) -> str:
    """Kraken's pair id for an id, an altname or a wsname ("XBTUSD", "XBT/USD" -> "XXBTZUSD")."""
    key = pair.upper()
    for pid, spec in ASSET_PAIRS.items():
        if key in (pid, spec["altname"], spec["wsname"]):
            return pid
    raise ValueError(f"the Kraken fake knows no pair {pair!r}")


def _fmt(value: Decimal, places: int) -> str:
    return str(value.quantize(Decimal(1).scaleb(-places)))


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _kraken_id(prefix: str) -> str:
    alphabet = string.ascii_uppercase + string.digits
    parts = ("".join(secrets.choice(alphabet) for _ in range(n)) for n in (5, 5, 6))
    first, second, third = parts
    return f"{prefix}{first}-{second}-{third}"


class KrakenError(Exception):
    """An error answered in Kraken's envelope."""

    def __init__(self, *errors: str) -> None:
        super().__init__(", ".join(errors))
        self.errors = list(errors)


@dataclass
class FakeOrder:
    txid: str
    pair: str  # pair id, e.g. XXBTZUSD
    side: str
    ordertype: str
    volume: Decimal
    price: Decimal | None
    cl_ord_id: str | None
    userref: int | None
    opentm: float
    reduce_only: bool = False
    oflags: str = "fciq"
    status: str = "open"
    vol_exec: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    closetm: float | None = None
    reason: str | None = None
    trades: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.volume - self.vol_exec

    def to_kraken(self, *, with_trades: bool = False) -> dict[str, Any]:
        spec = ASSET_PAIRS[self.pair]
        pd, ld, cd = spec["pair_decimals"], spec["lot_decimals"], spec["cost_decimals"]
        price = _fmt(self.price, pd) if self.price is not None else "0"
        at = f"limit {price}" if self.ordertype == "limit" else "market"
        average = self.cost / self.vol_exec if self.vol_exec else Decimal(0)
        data: dict[str, Any] = {
            "refid": None,
            "userref": self.userref,
            "status": self.status,
            "opentm": self.opentm,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": spec["altname"],
                "type": self.side,
                "ordertype": self.ordertype,
                "price": price,
                "price2": "0",
                "leverage": "none",
                "order": f"{self.side} {_fmt(self.volume, ld)} {spec['altname']} @ {at}",
                "close": "",
            },
            "vol": _fmt(self.volume, ld),
            "vol_exec": _fmt(self.vol_exec, ld),
            "cost": _fmt(self.cost, cd),
            "fee": _fmt(self.fee, cd),
            "price": _fmt(average, pd),
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": self.oflags,
        }
        if self.cl_ord_id is not None:
            data["cl_ord_id"] = self.cl_ord_id
        if self.status != "open":
            data["closetm"] = self.closetm
            data["reason"] = self.reason
        if with_trades and self.trades:
            data["trades"] = list(self.trades)
        return data


@dataclass
class Call:
    """One request the fake received (recorded before authentication)."""

    endpoint: str
    params: dict[str, str]
    at: float


@dataclass
class _Fault:
    kind: str  # "error" | "http" | "raw" | "disconnect" | "cut" | "mutate" | "pass"
    errors: list[str] = field(default_factory=list)
    status: int = 200
    body: str = ""
    after: bool = False  # process the request first, then answer with the fault
    mutate: Callable[[dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class _Cut:
    """An answer to break off: headers and half the body, then the socket closes."""

    status: int
    content_type: str
    body: bytes


class MarketClock:
    """The fake venue's "now" (epoch seconds): real time, or ``speed`` x real time from a
    point the test sets (``speed=0``: still until ``set``/``advance``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch: float | None = None  # None: real time
        self._anchor = 0.0
        self.speed = 1.0

    def set(self, epoch: float | datetime, *, speed: float | None = None) -> None:
        if isinstance(epoch, datetime):
            epoch = epoch.timestamp()
        with self._lock:
            self._epoch = float(epoch)
            self._anchor = time.monotonic()
            if speed is not None:
                self.speed = speed

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)

    def now(self) -> float:
        with self._lock:
            if self._epoch is None:
                return time.time()
            return self._epoch + (time.monotonic() - self._anchor) * self.speed

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)


@dataclass(frozen=True)
class _Candle:
    ts: int  # open time, epoch seconds
    open: str
    high: str
    low: str
    close: str
    volume: str


class _Series:
    """One pair's recorded candles at its base interval, and aggregates of them."""

    def __init__(self, candles: list[_Candle], interval: int) -> None:
        self.interval = interval
        self._by_interval: dict[int, tuple[list[int], list[_Candle]]] = {
            interval: ([c.ts for c in candles], candles)
        }

    def at(self, interval: int) -> tuple[list[int], list[_Candle]]:
        if interval not in self._by_interval:
            self._by_interval[interval] = self._aggregate(interval)
        return self._by_interval[interval]

    def _aggregate(self, interval: int) -> tuple[list[int], list[_Candle]]:
        frame = interval * 60
        groups: dict[int, list[_Candle]] = {}
        for c in self._by_interval[self.interval][1]:
            groups.setdefault(c.ts - c.ts % frame, []).append(c)
        out = [
            _Candle(
                ts,
                g[0].open,
                str(max(Decimal(c.high) for c in g)),
                str(min(Decimal(c.low) for c in g)),
                g[-1].close,
                str(sum((Decimal(c.volume) for c in g), Decimal(0))),
            )
            for ts, g in sorted(groups.items())
        ]
        return [c.ts for c in out], out


def _read_candles(path: str | Path) -> list[_Candle]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows)
        if header != ["timestamp", "open", "high", "low", "close", "volume"]:
            raise ValueError(f"{path}: not an OHLCV CSV (header {header})")
        return [
            _Candle(
                int(datetime.fromisoformat(r[0].replace("Z", "+00:00")).timestamp()),
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
            )
            for r in rows
        ]


class Hold:
    """A withheld response: the request was processed; the answer waits for ``release``."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.arrived = threading.Event()  # set once the request has been processed
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def wait(self) -> None:
        self._released.wait(self.delay)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads must not block stop()
    fake: KrakenFake


class _Handler(BaseHTTPRequestHandler):
    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add ~40 ms to every answer (a fake's artifact, not Kraken's).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        url = urlsplit(self.path)
        reply = self.server.fake._handle(self.command, url.path, url.query, raw, self.headers)
        if reply is None:  # an injected disconnect: close without a byte of answer
            self.close_connection = True
            return
        if isinstance(reply, _Cut):  # headers and half the body, then the socket closes
            self.close_connection = True
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.wfile.flush()
            return
        status, content_type, body = reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None


class KrakenFake:
    """Kraken's spot REST API on loopback, one account (one API key)."""

    def __init__(
        self,
        *,
        api_key: str = "fake-kraken-key",
        api_secret: str | None = None,
        balances: dict[str, Decimal | str] | None = None,
        time_scale: float = 1.0,
        ohlc_history: int = OHLC_HISTORY,
        ohlc_page: int = OHLC_HISTORY,
        commit_lag: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret or base64.b64encode(secrets.token_bytes(64)).decode()
        self.time_scale = time_scale
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._orders: dict[str, FakeOrder] = {}
        self._trades: dict[str, dict[str, Any]] = {}
        self._trade_seq = itertools.count(100_000)
        self._balances: dict[str, Decimal] = dict.fromkeys(ASSETS, Decimal(0))
        for asset, amount in (balances or {}).items():
            self._balances[asset_id(asset)] = Decimal(str(amount))
        self._last_nonce: dict[str, int] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._holds: dict[str, deque[Hold]] = {}
        self._all_holds: list[Hold] = []
        self._calls: list[Call] = []
        self._dead_man_deadline: float | None = None
        self.dead_man_timeouts: list[int] = []  # every timeout CancelAllOrdersAfter received
        self.dead_man_fired = 0
        self._stopping = False
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self.market = MarketClock()
        self.ohlc_history = ohlc_history
        self.ohlc_page = ohlc_page
        self.commit_lag = commit_lag
        self._auto_fill_stop = threading.Event()
        self._series: dict[str, _Series] = {}

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> KrakenFake:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._stopping = False
        serve = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kraken-fake",
            daemon=True,
        )
        dead_man = threading.Thread(target=self._dead_man_loop, name="kraken-dms", daemon=True)
        self._threads = [serve, dead_man]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._auto_fill_stop.set()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            holds = list(self._all_holds)
        for hold in holds:
            hold.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> KrakenFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Kraken fake is not running (call start())")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL to give the adapter (``api_url``); ccxt appends ``/0/private/...``."""
        return f"http://127.0.0.1:{self.port}"

    # -- test controls ------------------------------------------------------------

    def set_balance(self, asset: str, amount: Decimal | str) -> None:
        """Change a balance behind the adapter's back (deposit, withdrawal, manual trade)."""
        with self._lock:
            self._balances[asset_id(asset)] = Decimal(str(amount))

    def balance(self, asset: str) -> Decimal:
        with self._lock:
            return self._balances[asset_id(asset)]

    def fill(
        self,
        order: str,
        *,
        quantity: Decimal | str | None = None,
        price: Decimal | str | None = None,
        fee: Decimal | str | None = None,
        maker: bool = False,
        at: float | None = None,
    ) -> str:
        """Execute ``quantity`` (default: all that remains) of an open order; return the trade id.

        ``order`` is a txid or an open order's cl_ord_id. The price defaults to the limit
        price (required for a market order); the fee to the pair's first taker/maker tier.
        Balances move as Kraken's would (fee in the quote currency).
        """
        with self._lock:
            o = self._find_open(order)
            spec = ASSET_PAIRS[o.pair]
            qty = o.remaining if quantity is None else Decimal(str(quantity))
            if qty <= 0 or qty > o.remaining:
                raise ValueError(f"fill {qty} of {o.txid}: only {o.remaining} remains")
            px = Decimal(str(price)) if price is not None else o.price
            if px is None:
                raise ValueError(f"fill of market order {o.txid} needs a price")
            if _places(px) > spec["pair_decimals"]:
                raise ValueError(f"price {px} has more decimals than {spec['altname']} allows")
            cd = spec["cost_decimals"]
            cost = (qty * px).quantize(Decimal(1).scaleb(-cd))
            if fee is None:
                rate = Decimal(str((spec["fees_maker"] if maker else spec["fees"])[0][1])) / 100
                fee_amount = (cost * rate).quantize(Decimal(1).scaleb(-cd))
            else:
                fee_amount = Decimal(str(fee))
            trade_id = _kraken_id("T")
            when = time.time() if at is None else at
            self._trades[trade_id] = {
                "ordertxid": o.txid,
                "postxid": _kraken_id("T"),
                "pair": o.pair,
                "time": when,
                "type": o.side,
                "ordertype": o.ordertype,
                "price": _fmt(px, spec["pair_decimals"]),
                "cost": _fmt(cost, cd),
                "fee": _fmt(fee_amount, cd),
                "vol": _fmt(qty, spec["lot_decimals"]),
                "margin": _fmt(Decimal(0), cd),
                "leverage": "0",
                "misc": "",
                "trade_id": next(self._trade_seq),
                "maker": maker,
            }
            o.vol_exec += qty
            o.cost += cost
            o.fee += fee_amount
            o.trades.append(trade_id)
            base, quote = spec["base"], spec["quote"]
            if o.side == "buy":
                self._balances[base] += qty
                self._balances[quote] -= cost + fee_amount
            else:
                self._balances[base] -= qty
                self._balances[quote] += cost - fee_amount
            if o.remaining == 0:
                self._close(o, "closed", None)
            return trade_id

    def cancel_behind_back(self, order: str, *, reason: str = "User requested") -> None:
        """Cancel an open order as if from Kraken's web UI (or by Kraken itself)."""
        with self._lock:
            self._close(self._find_open(order), "canceled", reason)

    def add_foreign_order(
        self,
        *,
        pair: str = "XBTUSD",
        side: str = "buy",
        volume: Decimal | str = "0.01",
        price: Decimal | str | None = "10000",
        ordertype: str = "limit",
        cl_ord_id: str | None = None,
    ) -> str:
        """An open order placed outside the bot (web UI, another program); returns its txid."""
        with self._lock:
            o = FakeOrder(
                txid=self._new_txid(),
                pair=pair_id(pair),
                side=side,
                ordertype=ordertype,
                volume=Decimal(str(volume)),
                price=Decimal(str(price)) if price is not None else None,
                cl_ord_id=cl_ord_id,
                userref=None,
                opentm=time.time(),
            )
            self._orders[o.txid] = o
            return o.txid

    def drop_order(self, order: str) -> None:
        """Forget an order completely (Kraken lost it: no open, closed or query result)."""
        with self._lock:
            o = self._find(order)
            del self._orders[o.txid]

    def fail_next(
        self, endpoint: str, error: str | list[str], *, times: int = 1, after: bool = False
    ) -> None:
        """Answer the next ``times`` calls of ``endpoint`` with Kraken error(s).

        With ``after``, the request takes effect first (an order is placed), then the
        error is answered: the caller cannot tell that it worked.
        """
        errors = [error] if isinstance(error, str) else list(error)
        self._add_fault(endpoint, _Fault("error", errors=errors, after=after), times)

    def rate_limit_next(self, endpoint: str, *, times: int = 1) -> None:
        self.fail_next(endpoint, "EAPI:Rate limit exceeded", times=times)

    def http_error_next(
        self,
        endpoint: str,
        *,
        status: int = 502,
        body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>",
        times: int = 1,
        after: bool = False,
    ) -> None:
        """An HTTP error from Kraken's edge (Cloudflare): no Kraken envelope."""
        self._add_fault(endpoint, _Fault("http", status=status, body=body, after=after), times)

    def malformed_next(
        self,
        endpoint: str,
        body: str = '{"error": [], "result": {"open": ',
        *,
        times: int = 1,
        after: bool = False,
        content_type: str = "application/json",
    ) -> None:
        """Answer a 200 with ``body`` as is: bad JSON, or JSON missing fields."""
        self._add_fault(
            endpoint,
            _Fault("raw", status=200, body=body, errors=[content_type], after=after),
            times,
        )

    def disconnect_next(self, endpoint: str, *, times: int = 1, after: bool = False) -> None:
        """Close the connection without answering (with ``after``: once the request is done)."""
        self._add_fault(endpoint, _Fault("disconnect", after=after), times)

    def hold_next(self, endpoint: str = "AddOrder", *, delay: float | None = None) -> Hold:
        """Process the next ``endpoint`` call, then withhold its answer.

        The answer goes out after ``delay`` seconds, or when ``release()`` is called, or
        never (``delay=None``: the client times out) until the fake stops.
        """
        hold = Hold(delay)
        with self._lock:
            self._holds.setdefault(endpoint, deque()).append(hold)
            self._all_holds.append(hold)
        return hold

    def cut_next(self, endpoint: str, *, times: int = 1) -> None:
        """Send the status, the headers and half the body, then close the socket."""
        self._add_fault(endpoint, _Fault("cut", after=True), times)

    def pass_next(self, endpoint: str, *, times: int = 1) -> None:
        """Answer the next ``times`` calls normally (queue before a fault to delay it)."""
        self._add_fault(endpoint, _Fault("pass"), times)

    def corrupt_next(
        self, endpoint: str, mutate: Callable[[dict[str, Any]], None], *, times: int = 1
    ) -> None:
        """Let ``mutate`` change the next answer's ``result`` (in place) before it is sent."""
        self._add_fault(endpoint, _Fault("mutate", after=True, mutate=mutate), times)

    def load_ohlc(self, pair: str, path: str | Path, *, interval: int = 1) -> int:
        """Serve ``path`` (an OHLCV CSV, one ``interval``-minute candle a row) as ``pair``'s
        candles on ``OHLC``; return the number of candles."""
        candles = _read_candles(path)
        if interval not in OHLC_INTERVALS:
            raise ValueError(f"interval {interval} is not one of Kraken's {OHLC_INTERVALS}")
        with self._lock:
            self._series[pair_id(pair)] = _Series(candles, interval)
        return len(candles)

    def market_price(self, pair: str) -> str | None:
        """The price a market order meets now: the open of the frame forming at the market
        clock's now (the next bar's open, as the paper broker fills), else the last close."""
        with self._lock:
            series = self._series.get(pair_id(pair))
        if series is None:
            return None
        times, candles = series.at(series.interval)
        started = bisect.bisect_right(times, self.market.now())
        if not started:
            return None
        return candles[started - 1].open

    def auto_fill(self, every: float = 0.05) -> None:
        """Fill every open market order at ``market_price`` in a background thread (the
        soak and end-to-end tests: a venue that executes what it is sent)."""

        def loop() -> None:
            while not self._auto_fill_stop.wait(every):
                for o in self.open_orders():
                    if o["descr"]["ordertype"] != "market":
                        continue
                    pid = pair_id(o["descr"]["pair"])
                    price = self.market_price(pid)
                    if price is not None:
                        places = ASSET_PAIRS[pid]["pair_decimals"]
                        try:
                            self.fill(o["txid"], price=_fmt(Decimal(price), places))
                        except (KeyError, ValueError):
                            continue  # cancelled or filled meanwhile

        self._auto_fill_stop.clear()
        threading.Thread(target=loop, name="kraken-fake-auto-fill", daemon=True).start()

    def expire_dead_man_now(self) -> None:
        """Fire an armed dead-man timer at once (no effect when it is not armed)."""
        with self._cond:
            if self._dead_man_deadline is not None:
                self._dead_man_deadline = time.monotonic()
                self._cond.notify_all()

    # -- records ------------------------------------------------------------------

    @property
    def add_order_calls(self) -> int:
        return len(self.calls_to("AddOrder"))

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, endpoint: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.endpoint == endpoint]

    def order(self, txid: str) -> dict[str, Any]:
        with self._lock:
            o = self._orders[txid]
            return {"txid": txid, **o.to_kraken(with_trades=True)}

    def orders_by_cl_ord_id(self, cl_ord_id: str) -> list[dict[str, Any]]:
        """Every order (open or closed) Kraken holds with this client id, oldest first."""
        with self._lock:
            return [
                {"txid": o.txid, **o.to_kraken(with_trades=True)}
                for o in self._orders.values()
                if o.cl_ord_id == cl_ord_id
            ]

    def open_orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"txid": o.txid, **o.to_kraken()}
                for o in self._orders.values()
                if o.status == "open"
            ]

    @property
    def dead_man_armed(self) -> bool:
        with self._lock:
            return self._dead_man_deadline is not None

    # -- the server side ----------------------------------------------------------

    def _add_fault(self, endpoint: str, fault: _Fault, times: int) -> None:
        with self._lock:
            queue = self._faults.setdefault(endpoint, deque())
            for _ in range(times):
                queue.append(fault)

    def _handle(
        self, method: str, path: str, query: str, raw: str, headers: Any
    ) -> tuple[int, str, bytes] | _Cut | None:
        parts = path.strip("/").split("/")
        endpoint = parts[-1] if parts else ""
        api = parts[1] if len(parts) == 3 else ""
        if headers.get("Content-Type", "").startswith("application/json") and raw:
            try:
                params = {k: str(v) for k, v in json.loads(raw).items()}
            except (ValueError, AttributeError):
                params = {}
        else:
            params = dict(parse_qsl(raw if method == "POST" else query, keep_blank_values=True))
        with self._lock:
            self._calls.append(Call(endpoint, dict(params), time.time()))
            faults = self._faults.get(endpoint)
            fault = faults.popleft() if faults else None
            if fault is not None and fault.kind == "pass":
                fault = None
            holds = self._holds.get(endpoint)
            hold = holds.popleft() if holds else None
        if fault is not None and not fault.after:
            return self._fault_reply(fault)
        try:
            if api == "private" and method == "POST":
                self._authenticate(path, raw, params, headers)
                result = self._private(endpoint, params)
            elif api == "public":
                result = self._public(endpoint, params)
            else:
                raise KrakenError("EGeneral:Unknown method")
            if fault is not None and fault.kind == "mutate" and fault.mutate is not None:
                fault.mutate(result)
                fault = None
            reply = self._json(200, {"error": [], "result": result})
        except KrakenError as exc:
            reply = self._json(200, {"error": exc.errors, "result": {}})
        if hold is not None:
            hold.arrived.set()
            hold.wait()
        if fault is not None and fault.kind == "cut":
            return _Cut(*reply)
        if fault is not None and fault.kind != "mutate":
            return self._fault_reply(fault)
        return reply

    @staticmethod
    def _json(status: int, payload: Any) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(payload).encode()

    def _fault_reply(self, fault: _Fault) -> tuple[int, str, bytes] | None:
        if fault.kind == "disconnect":
            return None
        if fault.kind == "error":
            return self._json(200, {"error": fault.errors, "result": {}})
        if fault.kind == "raw":
            return fault.status, fault.errors[0], fault.body.encode()
        return fault.status, "text/html", fault.body.encode()

    def _authenticate(self, path: str, raw: str, params: dict[str, str], headers: Any) -> None:
        key = headers.get("API-Key")
        if key != self.api_key:
            raise KrakenError("EAPI:Invalid key")
        nonce = params.get("nonce", "")
        digest = hashlib.sha256((nonce + raw).encode()).digest()
        try:
            secret = base64.b64decode(self.api_secret)
        except ValueError:  # pragma: no cover - our own secret
            raise KrakenError("EAPI:Invalid key") from None
        expected = base64.b64encode(
            hmac.new(secret, path.encode() + digest, hashlib.sha512).digest()
        ).decode()
        if not hmac.compare_digest(headers.get("API-Sign", ""), expected):
            raise KrakenError("EAPI:Invalid signature")
        if not nonce.isdigit():
            raise KrakenError("EAPI:Invalid nonce")
        with self._lock:
            if int(nonce) <= self._last_nonce.get(key, 0):
                raise KrakenError("EAPI:Invalid nonce")
            self._last_nonce[key] = int(nonce)

    def _public(self, endpoint: str, params: dict[str, str]) -> Any:
        if endpoint == "Time":
            now = self.market.now()
            return {"unixtime": int(now), "rfc1123": formatdate(now, usegmt=True)}
        if endpoint == "SystemStatus":
            return {"status": "online", "timestamp": _iso(time.time())}
        if endpoint == "Assets":
            return ASSETS
        if endpoint == "AssetPairs":
            return ASSET_PAIRS
        if endpoint == "OHLC":
            return self._ohlc(params)
        raise KrakenError("EGeneral:Unknown method")

    def _ohlc(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            pid = pair_id(params.get("pair", ""))
        except ValueError:
            raise KrakenError("EQuery:Unknown asset pair") from None
        raw_interval = params.get("interval") or "1"
        if not raw_interval.isdigit() or int(raw_interval) not in OHLC_INTERVALS:
            raise KrakenError("EGeneral:Invalid arguments:interval")
        interval = int(raw_interval)
        since_raw = params.get("since")
        since = _decimal(since_raw)
        if since_raw not in (None, "") and since is None:
            raise KrakenError("EGeneral:Invalid arguments:since")
        with self._lock:
            series = self._series.get(pid)
        if series is None or interval % series.interval:
            return {pid: [], "last": int(since or 0)}
        times, candles = series.at(interval)
        frame = interval * 60
        now = self.market.now()
        started = bisect.bisect_right(times, now)  # candles whose frame has begun
        committed = bisect.bisect_right(times, now - frame - self.commit_lag)
        first = max(0, committed - self.ohlc_history)
        if since is not None:
            first = max(first, bisect.bisect_right(times, since))
        end = min(committed, first + self.ohlc_page)
        rows: list[list[Any]] = [_kraken_row(c) for c in candles[first:end]]
        if end >= committed:  # the committed tail went out: the forming frame(s) follow
            for c in candles[committed:started]:
                rows.append([c.ts, c.open, c.open, c.open, c.open, "0.0", "0.00000000", 0])
        last = times[committed - 1] if committed else int(since or 0)
        return {pid: rows, "last": last}

    def _private(self, endpoint: str, params: dict[str, str]) -> Any:
        handler = {
            "Balance": self._balance,
            "BalanceEx": self._balance_ex,
            "AddOrder": self._add_order,
            "CancelOrder": self._cancel_order,
            "CancelAll": self._cancel_all,
            "CancelAllOrdersAfter": self._cancel_all_after,
            "OpenOrders": self._open_orders,
            "ClosedOrders": self._closed_orders,
            "QueryOrders": self._query_orders,
            "TradesHistory": self._trades_history,
        }.get(endpoint)
        if handler is None:
            raise KrakenError("EGeneral:Unknown method")
        with self._lock:
            return handler(params)

    # -- private endpoints (called under the lock) --------------------------------

    def _balance(self, params: dict[str, str]) -> dict[str, str]:
        return {a: _fmt(v, ASSETS[a]["decimals"]) for a, v in self._balances.items()}

    def _balance_ex(self, params: dict[str, str]) -> dict[str, dict[str, str]]:
        holds = self._holds_by_asset()
        return {
            a: {
                "balance": _fmt(v, ASSETS[a]["decimals"]),
                "hold_trade": _fmt(holds.get(a, Decimal(0)), ASSETS[a]["decimals"]),
            }
            for a, v in self._balances.items()
        }

    def _holds_by_asset(self) -> dict[str, Decimal]:
        holds: dict[str, Decimal] = {}
        for o in self._orders.values():
            if o.status != "open":
                continue
            spec = ASSET_PAIRS[o.pair]
            if o.side == "sell":
                holds[spec["base"]] = holds.get(spec["base"], Decimal(0)) + o.remaining
            elif o.price is not None:
                holds[spec["quote"]] = holds.get(spec["quote"], Decimal(0)) + o.remaining * o.price
        return holds

    def _add_order(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            pid = pair_id(params.get("pair", ""))
        except ValueError:
            raise KrakenError("EQuery:Unknown asset pair") from None
        spec = ASSET_PAIRS[pid]
        side = params.get("type", "")
        if side not in ("buy", "sell"):
            raise KrakenError("EGeneral:Invalid arguments:type")
        ordertype = params.get("ordertype", "")
        if ordertype not in ("market", "limit"):
            raise KrakenError("EGeneral:Invalid arguments:ordertype")
        volume = _decimal(params.get("volume"))
        if volume is None or volume <= 0 or _places(volume) > spec["lot_decimals"]:
            raise KrakenError("EGeneral:Invalid arguments:volume")
        price: Decimal | None = None
        if ordertype == "limit":
            price = _decimal(params.get("price"))
            if price is None or price <= 0:
                raise KrakenError("EGeneral:Invalid arguments:price")
            if _places(price) > spec["pair_decimals"]:
                raise KrakenError(
                    f"EOrder:Invalid price:{spec['altname']} price can only be specified up to "
                    f"{spec['pair_decimals']} decimals."
                )
        if volume < Decimal(spec["ordermin"]):
            raise KrakenError("EOrder:Order minimum not met")
        if price is not None and volume * price < Decimal(spec["costmin"]):
            raise KrakenError("EOrder:Cost minimum not met")
        cl_ord_id = params.get("cl_ord_id") or None
        userref = params.get("userref") or None
        if cl_ord_id is not None:
            if userref is not None:
                raise KrakenError("EGeneral:Invalid arguments:cl_ord_id and userref")
            if not valid_cl_ord_id(cl_ord_id):
                raise KrakenError("EGeneral:Invalid arguments:cl_ord_id")
            if any(o.cl_ord_id == cl_ord_id and o.status == "open" for o in self._orders.values()):
                raise KrakenError("EOrder:Duplicate order:cl_ord_id in use by an open order")
        holds = self._holds_by_asset()
        if side == "sell":
            if self._balances[spec["base"]] - holds.get(spec["base"], Decimal(0)) < volume:
                raise KrakenError("EOrder:Insufficient funds")
        elif price is not None:
            available = self._balances[spec["quote"]] - holds.get(spec["quote"], Decimal(0))
            if available < volume * price:
                raise KrakenError("EOrder:Insufficient funds")
        order = FakeOrder(
            txid=self._new_txid(),
            pair=pid,
            side=side,
            ordertype=ordertype,
            volume=volume,
            price=price,
            cl_ord_id=cl_ord_id,
            userref=int(userref) if userref is not None and userref.lstrip("-").isdigit() else None,
            opentm=time.time(),
            reduce_only=params.get("reduce_only", "").lower() == "true",
            oflags=params.get("oflags") or "fciq",
        )
        descr = order.to_kraken()["descr"]["order"]
        if params.get("validate", "").lower() == "true":
            return {"descr": {"order": descr}}
        self._orders[order.txid] = order
        return {"descr": {"order": descr}, "txid": [order.txid]}

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        cl_ord_id = params.get("cl_ord_id")
        txid = params.get("txid")
        targets: list[FakeOrder]
        if cl_ord_id:
            targets = [
                o for o in self._orders.values() if o.cl_ord_id == cl_ord_id and o.status == "open"
            ]
        elif txid and txid.lstrip("-").isdigit():  # a userref
            targets = [
                o for o in self._orders.values() if o.userref == int(txid) and o.status == "open"
            ]
        else:
            o = self._orders.get(txid or "")
            targets = [o] if o is not None and o.status == "open" else []
        if not targets:
            raise KrakenError("EOrder:Unknown order")
        for o in targets:
            self._close(o, "canceled", "User requested")
        return {"count": len(targets)}

    def _cancel_all(self, params: dict[str, str]) -> dict[str, Any]:
        return {"count": self._cancel_every_open("User requested")}

    def _cancel_all_after(self, params: dict[str, str]) -> dict[str, Any]:
        raw = params.get("timeout", "")
        if not raw.isdigit() or int(raw) > 86400:
            raise KrakenError("EGeneral:Invalid arguments:timeout")
        timeout = int(raw)
        self.dead_man_timeouts.append(timeout)
        now = time.time()
        if timeout == 0:
            self._dead_man_deadline = None
            trigger = "0"
        else:
            self._dead_man_deadline = time.monotonic() + timeout * self.time_scale
            trigger = _iso(now + timeout)
        self._cond.notify_all()
        return {"currentTime": _iso(now), "triggerTime": trigger}

    def _open_orders(self, params: dict[str, str]) -> dict[str, Any]:
        with_trades = params.get("trades", "").lower() == "true"
        return {
            "open": {
                o.txid: o.to_kraken(with_trades=with_trades)
                for o in self._filtered(params)
                if o.status == "open"
            }
        }

    def _closed_orders(self, params: dict[str, str]) -> dict[str, Any]:
        with_trades = params.get("trades", "").lower() == "true"
        start, end = _decimal(params.get("start")), _decimal(params.get("end"))
        closed = [
            o
            for o in self._filtered(params)
            if o.status != "open"
            and (start is None or Decimal(str(o.closetm)) > start)
            and (end is None or Decimal(str(o.closetm)) <= end)
        ]
        closed.sort(key=lambda o: o.closetm or 0, reverse=True)
        ofs = int(params.get("ofs") or 0)
        page = closed[ofs : ofs + PAGE_SIZE]
        return {
            "closed": {o.txid: o.to_kraken(with_trades=with_trades) for o in page},
            "count": len(closed),
        }

    def _query_orders(self, params: dict[str, str]) -> dict[str, Any]:
        txids = [t for t in params.get("txid", "").split(",") if t]
        if not txids or len(txids) > QUERY_ORDERS_MAX:
            raise KrakenError("EGeneral:Invalid arguments:txid")
        with_trades = params.get("trades", "").lower() == "true"
        result: dict[str, Any] = {}
        for txid in txids:
            o = self._orders.get(txid)
            if o is None:
                raise KrakenError("EOrder:Invalid order")
            result[txid] = o.to_kraken(with_trades=with_trades)
        return result

    def _trades_history(self, params: dict[str, str]) -> dict[str, Any]:
        start, end = _decimal(params.get("start")), _decimal(params.get("end"))
        trades = [
            (tid, t)
            for tid, t in self._trades.items()
            if (start is None or Decimal(str(t["time"])) > start)
            and (end is None or Decimal(str(t["time"])) <= end)
        ]
        trades.sort(key=lambda item: item[1]["time"], reverse=True)
        ofs = int(params.get("ofs") or 0)
        page = trades[ofs : ofs + PAGE_SIZE]
        return {"trades": {tid: dict(t) for tid, t in page}, "count": len(trades)}

    # -- helpers ------------------------------------------------------------------

    def _filtered(self, params: dict[str, str]) -> list[FakeOrder]:
        orders = list(self._orders.values())
        if params.get("cl_ord_id"):
            orders = [o for o in orders if o.cl_ord_id == params["cl_ord_id"]]
        if params.get("userref"):
            orders = [o for o in orders if str(o.userref) == params["userref"]]
        return orders

    def _new_txid(self) -> str:
        while True:
            txid = _kraken_id("O")
            if txid not in self._orders:
                return txid

    def _find(self, order: str) -> FakeOrder:
        if order in self._orders:
            return self._orders[order]
        matches = [o for o in self._orders.values() if o.cl_ord_id == order]
        if not matches:
            raise KeyError(f"the Kraken fake has no order {order!r}")
        open_ = [o for o in matches if o.status == "open"]
        return (open_ or matches)[-1]

    def _find_open(self, order: str) -> FakeOrder:
        o = self._find(order)
        if o.status != "open":
            raise ValueError(f"order {o.txid} is {o.status}, not open")
        return o

    def _close(self, o: FakeOrder, status: str, reason: str | None) -> None:
        o.status = status
        o.reason = reason
        o.closetm = time.time()

    def _cancel_every_open(self, reason: str) -> int:
        open_ = [o for o in self._orders.values() if o.status == "open"]
        for o in open_:
            self._close(o, "canceled", reason)
        return len(open_)

    def _dead_man_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                deadline = self._dead_man_deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._cancel_every_open("Dead man's switch")
                self._dead_man_deadline = None
                self.dead_man_fired += 1


def _decimal(value: str | None) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _kraken_row(c: _Candle) -> list[Any]:
    volume = Decimal(c.volume)
    if volume:
        typical = (Decimal(c.high) + Decimal(c.low) + Decimal(c.close)) / 3
        vwap, count = str(typical.quantize(Decimal("0.00001"))), 1 + int(volume * 10) % 50
    else:
        vwap, count = "0.0", 0
    return [c.ts, c.open, c.high, c.low, c.close, vwap, c.volume, count]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kraken_fake_running(**kwargs: Any) -> Iterator[KrakenFake]:
    """For a pytest fixture: ``yield from kraken_fake_running(balances={...})``."""
    with KrakenFake(**kwargs) as fake:
        yield fake
