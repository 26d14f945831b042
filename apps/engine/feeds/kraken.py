"""``KrakenFeed``: closed bars from Kraken's public REST ``OHLC``, polled at each bar close.

**REST polling, not ccxt.pro's websocket.** Kraken's REST ``OHLC`` says exactly which
candles are final: ``last`` is the open time of the newest COMMITTED candle, and the
entries after it are the frame still forming. One request both backfills (``since``
= the last bar we emitted) and streams, so after a reconnect there is nothing to
stitch: the same call that catches up is the live one. A websocket ``ohlc`` channel
pushes every update of the forming candle and never says "this one is final" (the
client infers it when the next frame begins), a reconnect still needs this REST call
to fill the gap, and a loopback fake would have to speak Kraken's websocket protocol
as well. A bar is only useful once closed, so polling a few seconds after each close
costs nothing in latency that matters for bars of a minute or more.

**One endpoint, through ccxt, with Kraken's own strings.** ccxt's ``fetch_ohlcv`` is a
thin wrapper over this same endpoint (``publicGetOHLC``) that turns prices into floats
and drops ``last``; we call the endpoint through the same ccxt client
(``apps.trading.venues.kraken.client``: transport, timeouts, Kraken's error table,
the envelope check, the ``api_url`` override for the loopback fake) and read the
decimal strings straight into ``Decimal``. Our ``BTC-USD`` maps to ccxt's ``BTC/USD``
(``SymbolMap``) and ccxt's markets give Kraken's pair id (``XXBTZUSD``).

**Closed bars only, on the venue's time.** A candle is emitted only when its open
time is at or before ``last`` (Kraken has committed it: its close, ``ts +
timeframe``, is behind the venue's clock); the forming entry is never emitted. Bar
times are Kraken's, not ours. Every bar goes through the series' ``SeriesGate``
(overlap dropped, validated, in order).

**Timing.** After each bar close (our ``clock``, aligned on the epoch like Kraken's
frames) the feed waits ``poll_delay_seconds`` and polls; if Kraken has not committed
the just-closed frame yet, it polls again every ``retry_seconds`` until it has, or
until ``retry_window_seconds`` after the close (then it waits for the next close,
whose poll catches up). All waiting goes through ``wait(stop, seconds)``, so ``stop``
interrupts it, and tests can run the clock faster than real time.

**Failures.** A lost connection, a timeout, an HTTP error, a malformed answer (bad
JSON, a missing field: also rejected on the series' gate, so it is counted) or a rate
limit: the feed logs it, reports ``DISCONNECTED``, waits (doubling backoff, at least
``rate_limit_backoff_seconds`` after a rate limit), reconnects (reloads the markets) and
backfills every series from its last emitted bar, page by page (Kraken answers at most
720 candles). A single malformed row is rejected on its own and the rest of the
answer is used. Kraken keeps only its most recent 720 candles: after a longer outage
the older bars cannot be had, and the feed logs the gap. Nothing is raised out of
``run``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt

from apps.engine.feeds.base import (
    FeedSink,
    FeedState,
    LiveFeed,
    Subscription,
    timeframe_delta,
    utcnow,
)
from apps.engine.feeds.timing import stop_wait as _stop_wait
from apps.marketdata.domain.validation import UNPARSEABLE, ValidationConfig
from apps.model.bars import Bar
from apps.trading.venues.kraken.client import kraken_client
from apps.trading.venues.kraken.mapping import SymbolMap, _dec, _Malformed

logger = logging.getLogger(__name__)

MAX_PAGES = 50  # OHLC calls per series per poll (Kraken answers everything in one)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _BadAnswer(Exception):
    """An OHLC answer whose shape is not Kraken's (the series' gate counts it)."""


class KrakenFeed(LiveFeed):
    """Closed bars of each subscription from Kraken's public ``OHLC`` (see the module doc)."""

    name = "kraken"

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        sink: FeedSink,
        *,
        api_url: str | None = None,
        timeout_seconds: float = 10.0,
        rate_limit: bool = True,
        poll_delay_seconds: float = 2.0,
        retry_seconds: float = 1.0,
        retry_window_seconds: float = 30.0,
        backoff_initial_seconds: float = 1.0,
        backoff_max_seconds: float = 60.0,
        rate_limit_backoff_seconds: float = 10.0,
        validation: ValidationConfig | Mapping[str, ValidationConfig] | None = None,
        clock: Callable[[], datetime] = utcnow,
        wait: Callable[[threading.Event, float], bool] = _stop_wait,
    ) -> None:
        super().__init__(subscriptions, sink, validation=validation, clock=clock)
        numbers = {
            "timeout_seconds": timeout_seconds,
            "retry_seconds": retry_seconds,
            "backoff_initial_seconds": backoff_initial_seconds,
            "backoff_max_seconds": backoff_max_seconds,
        }
        for what, value in numbers.items():
            if value <= 0:
                raise ValueError(f"kraken feed: {what} must be > 0, not {value}")
        for what, value in (
            ("poll_delay_seconds", poll_delay_seconds),
            ("retry_window_seconds", retry_window_seconds),
            ("rate_limit_backoff_seconds", rate_limit_backoff_seconds),
        ):
            if value < 0:
                raise ValueError(f"kraken feed: {what} must be >= 0, not {value}")
        self._exchange = kraken_client(
            api_url=api_url, timeout_seconds=timeout_seconds, rate_limit=rate_limit
        )
        self._symbols = SymbolMap(
            [s.instrument for s in self.subscriptions], self._exchange.safe_currency_code
        )
        self.poll_delay = timedelta(seconds=poll_delay_seconds)
        self.retry = timedelta(seconds=retry_seconds)
        self.retry_window = timedelta(seconds=retry_window_seconds)
        self.backoff_initial = backoff_initial_seconds
        self.backoff_max = backoff_max_seconds
        self.rate_limit_backoff = rate_limit_backoff_seconds
        self.wait = wait
        self._pair_ids: dict[tuple[str, str], str] = {}
        self._venue_last: dict[tuple[str, str], datetime] = {}  # Kraken's ``last`` per series
        self.reconnects = 0
        self.gaps = 0  # backfills that could not reach back to the last emitted bar

    @classmethod
    def from_settings(
        cls,
        subscriptions: Sequence[Subscription],
        sink: FeedSink,
        *,
        validation: ValidationConfig | Mapping[str, ValidationConfig] | None = None,
    ) -> KrakenFeed:
        """The feed the engine runs: KRAKEN_API_URL / KRAKEN_TIMEOUT_SECONDS / KRAKEN_RATE_LIMIT
        (the venue's own settings) and the feeds' clock (``feed_timing``)."""
        from django.conf import settings

        from apps.engine.feeds.timing import feed_timing

        clock, wait = feed_timing()
        return cls(
            subscriptions,
            sink,
            api_url=settings.KRAKEN_API_URL or None,
            timeout_seconds=settings.KRAKEN_TIMEOUT_SECONDS,
            rate_limit=settings.KRAKEN_RATE_LIMIT,
            validation=validation,
            clock=clock,
            wait=wait,
        )

    # -- the loop -----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        backoff = self.backoff_initial
        first = True
        while not stop.is_set():
            try:
                if not first:
                    self.reconnects += 1
                first = False
                self.state(FeedState.CONNECTING)
                self._connect()
                self.state(FeedState.BACKFILLING)
                for sub in self.subscriptions:
                    if stop.is_set():
                        break
                    self._poll(sub)
                if stop.is_set():
                    break
                self.state(FeedState.LIVE)
                backoff = self.backoff_initial
                self._live(stop)
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
                delay = max(backoff, self.rate_limit_backoff)
                self._lost(f"rate limited by Kraken, backing off {delay:g}s: {exc}")
                backoff = min(max(backoff * 2, delay), self.backoff_max)
                if self.wait(stop, delay):
                    break
                continue
            except ccxt.BaseError as exc:
                self._lost(f"{type(exc).__name__}: {_short(exc)}")
            except Exception as exc:  # never out of run: report, back off, start again
                logger.exception("feed kraken: unexpected error")
                self._lost(f"unexpected {type(exc).__name__}: {_short(exc)}")
            if self.wait(stop, backoff):
                break
            backoff = min(backoff * 2, self.backoff_max)
        self.state(FeedState.STOPPED)

    def _lost(self, detail: str) -> None:
        logger.warning("feed kraken: connection lost: %s", detail)
        self.state(FeedState.DISCONNECTED, detail)

    def _connect(self) -> None:
        self._exchange.load_markets(reload=True)
        for sub in self.subscriptions:
            symbol = self._symbols.add(sub.instrument)
            if symbol not in self._exchange.markets:
                # A configuration mistake, not a transient one: reported as a lost
                # connection (run never raises), with the instrument named.
                raise ccxt.BadSymbol(f"no Kraken market {symbol} for instrument {sub.instrument}")
            self._pair_ids[sub.key] = self._exchange.market(symbol)["id"]

    def _live(self, stop: threading.Event) -> None:
        due = {sub.key: self._next_poll(sub, self.clock()) for sub in self.subscriptions}
        while not stop.is_set():
            wake = min(due.values())
            if self.wait(stop, (wake - self.clock()).total_seconds()):
                return
            now = self.clock()
            for sub in self.subscriptions:
                if stop.is_set():
                    return
                if due[sub.key] <= now:
                    self._poll(sub)
                    due[sub.key] = self._next_poll(sub, self.clock())

    def _next_poll(self, sub: Subscription, now: datetime) -> datetime:
        """When to poll ``sub`` next: soon again while the frame that closed last is not
        committed at Kraken (within the retry window), else just after the next close."""
        tf = timeframe_delta(sub.timeframe)
        frame = _floor(now, tf)  # open time of the frame now forming
        closed = frame - tf  # the bar that closed at ``frame``
        venue_last = self._venue_last.get(sub.key)
        waiting = venue_last is None or venue_last < closed
        if waiting and now < frame + self.retry_window:
            return max(now + self.retry, frame + self.poll_delay)
        return frame + tf + self.poll_delay

    # -- one poll -----------------------------------------------------------------

    def _poll(self, sub: Subscription) -> None:
        """Fetch and emit every committed candle after the series' last emitted bar."""
        gate = self.gates[sub.key]
        tf = timeframe_delta(sub.timeframe)
        cursor = gate.last_ts
        for _ in range(MAX_PAGES):
            rows, last = self._fetch(sub, cursor)
            self._venue_last[sub.key] = last
            bars: list[Bar] = []
            newest: datetime | None = None
            for row in rows:
                ts = _row_time(row)
                if ts is not None and ts > last:  # not committed: the frame still forming
                    continue
                if ts is not None and (cursor is None or ts > cursor):
                    newest = ts if newest is None else max(newest, ts)
                bar = self._parse_row(sub, row, ts)
                if bar is not None:
                    bars.append(bar)
            bars.sort(key=lambda b: b.ts)
            if bars and cursor is not None and bars[0].ts > cursor + tf:
                self.gaps += 1
                logger.warning(
                    "feed kraken: %s %s: no candles between %s and %s at Kraken "
                    "(an outage longer than Kraken's 720-candle history, or none traded)",
                    sub.instrument,
                    sub.timeframe,
                    cursor.isoformat(),
                    bars[0].ts.isoformat(),
                )
            for bar in bars:
                gate.offer(bar)
            if newest is None or newest >= last or (cursor is not None and newest <= cursor):
                return
            cursor = newest  # more committed candles after this page

    def _fetch(self, sub: Subscription, since: datetime | None) -> tuple[list[Any], datetime]:
        request: dict[str, Any] = {
            "pair": self._pair_ids[sub.key],
            "interval": int(timeframe_delta(sub.timeframe) / timedelta(minutes=1)),
        }
        if since is not None:
            request["since"] = str(int((since - _EPOCH).total_seconds()))
        try:
            response = self._exchange.publicGetOHLC(request)
            return self._read(sub, response)
        except ccxt.BadResponse as exc:
            self.gates[sub.key].reject(UNPARSEABLE, _short(exc))
            raise
        except _BadAnswer as exc:
            self.gates[sub.key].reject(UNPARSEABLE, str(exc))
            raise ccxt.BadResponse(f"kraken OHLC {request['pair']}: {exc}") from exc

    def _read(self, sub: Subscription, response: Any) -> tuple[list[Any], datetime]:
        result = response.get("result") if isinstance(response, dict) else None
        if not isinstance(result, dict):
            raise _BadAnswer(f"no result object: {_snippet(response)}")
        pair = self._pair_ids[sub.key]
        rows = result.get(pair)
        last = result.get("last")
        if not isinstance(rows, list):
            raise _BadAnswer(f"no {pair} list in result: {_snippet(result)}")
        if isinstance(last, bool) or not isinstance(last, int | str):
            raise _BadAnswer(f"no integer 'last' in result: {_snippet(result)}")
        try:
            last_ts = _epoch(last)
        except ValueError:
            raise _BadAnswer(f"'last' is not a time: {last!r}") from None
        return rows, last_ts

    def _parse_row(self, sub: Subscription, row: Any, ts: datetime | None) -> Bar | None:
        """One ``[time, open, high, low, close, vwap, volume, count]``; None (rejected) if bad."""
        try:
            if not isinstance(row, list) or len(row) < 7:
                raise _Malformed("not a list of 8 fields")
            if ts is None:
                raise _Malformed(f"time is not an integer: {row[0]!r}")
            o, h, lo, c = (_dec_str(row[i], name) for i, name in enumerate(_PRICES, start=1))
            volume = _dec_str(row[6], "volume")
        except _Malformed as exc:
            raw = _snippet(row)
            logger.warning(
                "feed kraken: %s %s: malformed OHLC row (%s): %s",
                sub.instrument,
                sub.timeframe,
                exc,
                raw,
            )
            self.gates[sub.key].reject(UNPARSEABLE, raw)
            return None
        return Bar(sub.instrument, ts, o, h, lo, c, volume)


_PRICES = ("open", "high", "low", "close")


def _dec_str(value: Any, what: str) -> Decimal:
    """Kraken sends numbers as strings; a bare JSON number would already be a float."""
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a decimal string: {value!r}")
    return _dec(value, what)


def _row_time(row: Any) -> datetime | None:
    """A row's open time, or None when it has none that reads as whole epoch seconds."""
    if not isinstance(row, list) or not row:
        return None
    value = row[0]
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return _epoch(value)
    except ValueError:
        return None


def _epoch(value: int | str) -> datetime:
    seconds = int(value)
    if seconds < 0:
        raise ValueError(f"negative time {value!r}")
    return _EPOCH + timedelta(seconds=seconds)


def _floor(when: datetime, step: timedelta) -> datetime:
    """The start of the ``step`` frame holding ``when`` (frames aligned on the Unix epoch)."""
    return when - (when - _EPOCH) % step


def _snippet(value: Any, limit: int = 300) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:limit]


def _short(exc: BaseException, limit: int = 300) -> str:
    return str(exc)[:limit]
