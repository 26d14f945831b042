"""Interactive Brokers live bars through ib_async (TWS / IB Gateway): ``IbkrFeed``.

Source of the live bars: ``reqRealTimeBars`` (5-second TRADES bars), aggregated here into
the subscription's timeframe, not ``reqHistoricalData(keepUpToDate=True)``. Why:

- a 5-second bar is final when it arrives and covers exactly its 5 seconds, so a
  timeframe bar is closed, complete and final the moment its last 5-second bar arrives
  (or the first one of a later window does). keepUpToDate only re-sends the bar in
  progress every few seconds; the bar is "closed" when an update for the next one
  appears, and its last update may miss the trades of its final seconds;
- the coverage is checkable: TWS sends a 5-second bar every 5 seconds (zero volume when
  nothing traded), so a missing one (a farm outage, a resubscription, a bad message) is
  a visible gap, and a window with a gap is never emitted from live data: it is fetched
  from history instead (see below).

Only intraday timeframes are aggregated (1m, 5m, 15m, 30m, 1h: windows aligned on UTC);
IB's 4-hour and daily bars follow the trading session, which 5-second bars cannot
reproduce, so those timeframes are refused at construction.

History (``reqHistoricalData``, TRADES, epoch-second dates) fills every gap: on start and
after every reconnect it asks for everything after the last emitted bar (``since``);
during the session it is asked again whenever a window closes that live data does not
fully cover (the window the subscription started in, a window with a gap or a rejected
5-second bar) or when windows before it are not accounted for. Only history bars that
ended by TWS's clock at the time of the request (``reqCurrentTime``) are taken: TWS also
returns the bar in progress. Every bar goes through ``SeriesGate.offer``: overlap with what
was emitted is dropped, the rest validated and emitted in order, so the series has no
gap, no duplicate and no bar out of order. A 5-second bar with no volume carries no trade
and is left out of the aggregate; a window without trades emits no bar (as IB's history
has none for it).

TWS messages: market-data farm OK (2104, 2106, 2158) and "inactive but available" (2108)
are logged at info; farm broken (2103, 2105, 2157) is logged as a warning and reported as
state (2103, the live data farm: DISCONNECTED until 2104, and the live windows it spans
come from history); pacing violations, 162 on a historical request and 420 on the
real-time subscription, back off (doubling, interruptible by ``stop``) and retry;
connectivity lost (1100) is DISCONNECTED until 1101/1102 (1101 resubscribes); other
errors are logged and counted in ``errors``. Messages ib_async cannot decode are logged
and counted (``malformed`` here and ``broker_malformed_messages_total{broker="ibkr"}``),
and a 5-second bar that fails validation is rejected through the sink; neither reaches a
bar.

Connection: the product's ``IbkrSession`` (``apps.trading.venues.ibkr.session``) with its own
event loop, TWS pacing limits and malformed-message handling, but a private one: the feed
keeps its loop running for the whole stream, which the order path's shared session (run
one call at a time under a lock) cannot, so the feed needs a client id of its own. It
connects read-only and fetches nothing at start. On a lost connection ``run`` reports
DISCONNECTED, waits (doubling from ``reconnect_seconds``, interruptible by ``stop``),
reconnects and backfills; it never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ib_async import IB, Stock
from ib_async.ib import StartupFetch
from ib_async.objects import BarData, BarDataList, RealTimeBar, RealTimeBarList
from ib_async.wrapper import RequestError

from apps.engine.feeds.base import (
    TIMEFRAMES,
    FeedSink,
    FeedState,
    LiveFeed,
    SeriesGate,
    Subscription,
    timeframe_delta,
    utcnow,
)
from apps.marketdata.domain.validation import (
    DUPLICATE_TIMESTAMP,
    OUT_OF_ORDER_TIMESTAMP,
    ValidationConfig,
    validate_bar,
)
from apps.model.bars import Bar
from apps.trading.venues.ibkr.errors import (
    CONNECTIVITY_LOST,
    RESTORED_DATA_KEPT,
    RESTORED_DATA_LOST,
)
from apps.trading.venues.ibkr.session import IbkrSession

logger = logging.getLogger(__name__)

FARM_OK = {2104: "market data", 2106: "historical data", 2158: "security definition"}
FARM_BROKEN = {2103: "market data", 2105: "historical data", 2157: "security definition"}
FARM_INACTIVE = 2108  # "market data farm connection is inactive but should be available"
HISTORICAL_PACING = 162  # historical data pacing violation / query cancelled / no data
REALTIME_PACING = 420  # invalid real-time query (pacing violation)
NO_DATA_TEXT = "returned no data"  # 162's text when history simply has no bars
BUST_EVENT = 10225  # real-time bars deactivated by a bust (ib_async resubscribes)
MISALIGNED = "misaligned_5s_bar"  # a 5-second bar whose time is not on a 5 s boundary

BAR_SECONDS = 5
FIVE = timedelta(seconds=BAR_SECONDS)
BAR_SIZES = {"1m": "1 min", "5m": "5 mins", "15m": "15 mins", "30m": "30 mins", "1h": "1 hour"}
MAX_BACKFILL = timedelta(days=30)

_T = TypeVar("_T")


class _Stopped(Exception):
    """``stop`` was set: leave the stream."""


def _floor(ts: datetime, step: timedelta) -> datetime:
    seconds = int(step.total_seconds())
    epoch = math.floor(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _dec(value: float) -> Decimal:
    """IB's float as the Decimal of its shortest repr (167.65 -> Decimal('167.65'))."""
    return Decimal(repr(float(value)))


def _duration(span: timedelta) -> str:
    """An IB durationStr covering ``span``: seconds up to a day, whole days beyond."""
    seconds = max(math.ceil(span.total_seconds()), 60)
    if seconds <= 86400:
        return f"{seconds} S"
    return f"{math.ceil(seconds / 86400)} D"


@dataclass
class _Window:
    """One timeframe window being aggregated from 5-second bars."""

    start: datetime
    complete: bool  # every 5-second bar of it so far arrived, from its very start
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None
    volume: Decimal = Decimal(0)

    def add(self, bar: Bar) -> None:
        if bar.volume <= 0:  # no trade in these 5 seconds: TWS repeats the last price
            return
        if self.open is None:
            self.open, self.high, self.low = bar.open, bar.high, bar.low
        else:
            assert self.high is not None
            assert self.low is not None
            self.high, self.low = max(self.high, bar.high), min(self.low, bar.low)
        self.close = bar.close
        self.volume += bar.volume

    def bar(self, instrument: str) -> Bar | None:
        if self.open is None:
            return None
        assert self.high is not None
        assert self.low is not None
        assert self.close is not None
        return Bar(instrument, self.start, self.open, self.high, self.low, self.close, self.volume)


class _Series:
    """One subscription: its gate, the window in progress, and how far it is accounted for."""

    def __init__(self, sub: Subscription, gate: SeriesGate) -> None:
        self.sub = sub
        self.gate = gate
        self.step = timeframe_delta(sub.timeframe)
        self.bar_size = BAR_SIZES[sub.timeframe]
        self.window: _Window | None = None
        # Every window ending at or before this was emitted or is known to be empty.
        self.synced_to: datetime | None = None

    def add(self, bar: Bar, *, gap: bool, closed: Callable[[_Series, _Window], None]) -> None:
        start = _floor(bar.ts, self.step)
        if self.window is not None and start != self.window.start:
            closed(self, self.window)  # its last 5 s bar never came: the next one closes it
            self.window = None
        if self.window is None:
            self.window = _Window(start, complete=bar.ts == start)
        elif gap:
            self.window.complete = False
        self.window.add(bar)
        if bar.ts + FIVE == start + self.step:  # its last 5-second bar: closed
            closed(self, self.window)
            self.window = None

    def broken(self) -> None:
        if self.window is not None:
            self.window.complete = False


class _Stream:
    """One instrument's real-time 5-second bars, shared by its timeframes."""

    def __init__(self, instrument: str, contract: Stock, series: list[_Series]) -> None:
        self.instrument = instrument
        self.contract = contract
        self.series = series
        self.bars: RealTimeBarList | None = None
        self.last_ts: datetime | None = None  # the last good 5 s bar; None after a break
        self.retry_seconds = 0.0  # the next resubscription's backoff (0: the first one)

    def broken(self) -> None:
        self.last_ts = None
        for series in self.series:
            series.broken()


class _DecoderLogger(logging.LoggerAdapter):
    """ib_async's decoder logger (already counted by the session): also counts for the feed."""

    def __init__(self, inner: logging.LoggerAdapter, feed: IbkrFeed) -> None:
        super().__init__(inner, {})
        self.feed = feed

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.ERROR:
            self.feed.malformed += 1
        self.logger.log(level, msg, *args, **kwargs)


class IbkrFeed(LiveFeed):
    """Closed bars of US equities from TWS / IB Gateway (see the module docstring)."""

    name = "ibkr"

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        sink: FeedSink,
        *,
        host: str,
        port: int,
        client_id: int,
        currency: str = "USD",
        exchange: str = "SMART",
        use_rth: bool = False,
        timeout_seconds: float = 10.0,
        reconnect_seconds: float = 1.0,
        max_reconnect_seconds: float = 60.0,
        pacing_seconds: float = 15.0,
        max_pacing_seconds: float = 600.0,
        history_delay_seconds: float = 1.0,
        initial_bars: int = 300,
        validation: ValidationConfig | Mapping[str, ValidationConfig] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(subscriptions, sink, validation=validation, clock=clock)
        for sub in self.subscriptions:
            if sub.timeframe not in BAR_SIZES:
                raise ValueError(
                    f"IBKR feed: timeframe {sub.timeframe!r} of {sub.instrument} is not "
                    f"supported (5-second bars aggregate into {', '.join(BAR_SIZES)}; "
                    f"known timeframes: {', '.join(TIMEFRAMES)})"
                )
        if not host:
            raise ValueError("IBKR feed: host is empty")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"IBKR feed: port {port!r} is not a TCP port")
        if not isinstance(client_id, int) or client_id < 0:
            raise ValueError(f"IBKR feed: client id {client_id!r} must be an integer >= 0")
        for label, seconds in (
            ("timeout_seconds", timeout_seconds),
            ("reconnect_seconds", reconnect_seconds),
            ("pacing_seconds", pacing_seconds),
        ):
            if not seconds > 0:
                raise ValueError(f"IBKR feed: {label} {seconds!r} must be > 0")
        if initial_bars < 1:
            raise ValueError(f"IBKR feed: initial_bars {initial_bars!r} must be >= 1")
        self.host, self.port, self.client_id = host, port, client_id
        self.currency, self.exchange, self.use_rth = currency, exchange, use_rth
        self.timeout = float(timeout_seconds)
        self.reconnect_seconds = float(reconnect_seconds)
        self.max_reconnect_seconds = max(float(max_reconnect_seconds), self.reconnect_seconds)
        self.pacing_seconds = float(pacing_seconds)
        self.max_pacing_seconds = max(float(max_pacing_seconds), self.pacing_seconds)
        self.history_delay_seconds = float(history_delay_seconds)
        self.initial_bars = initial_bars
        # Observations (read by tests and the engine's status).
        self.malformed = 0  # messages ib_async could not decode
        self.errors: Counter[int] = Counter()  # TWS error codes not handled otherwise
        self.pacing_violations = 0
        self.history_requests = 0
        self.connections = 0  # successful connects
        self.current_state = FeedState.CONNECTING
        # Per connection (loop thread only).
        self._series = [_Series(sub, self.gates[sub.key]) for sub in self.subscriptions]
        self._streams: dict[int, _Stream] = {}  # real-time reqId -> stream
        self._queue: asyncio.Queue[tuple[Any, ...]] | None = None
        self._wake: asyncio.Event | None = None
        self._stop: threading.Event | None = None
        self._ib: IB | None = None
        self._live = False
        self._broken_farms: set[str] = set()
        self._link_lost = False

    def state(self, state: FeedState, detail: str = "") -> None:
        self.current_state = state
        super().state(state, detail)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port} (client id {self.client_id})"

    # --- the thread -------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        subscriptions: Sequence[Subscription],
        sink: FeedSink,
        *,
        validation: ValidationConfig | Mapping[str, ValidationConfig] | None = None,
    ) -> IbkrFeed:
        """The feed the engine runs: IBKR_HOST / IBKR_PORT / IBKR_TIMEOUT_SECONDS and a client
        id of its own (IBKR_FEED_CLIENT_ID, not the execution worker's IBKR_CLIENT_ID)."""
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from apps.engine.feeds.timing import feed_timing

        taken = (settings.IBKR_CLIENT_ID, settings.IBKR_CLIENT_ID + 1)
        if settings.IBKR_FEED_CLIENT_ID in taken:
            raise ImproperlyConfigured(
                f"IBKR_FEED_CLIENT_ID={settings.IBKR_FEED_CLIENT_ID} is taken: TWS takes one "
                f"connection per client id and IBKR_CLIENT_ID={taken[0]} (orders) and "
                f"{taken[1]} (control) are the execution worker's; give the feed another one"
            )
        clock, _wait = feed_timing()
        return cls(
            subscriptions,
            sink,
            host=settings.IBKR_HOST,
            port=settings.IBKR_PORT,
            client_id=settings.IBKR_FEED_CLIENT_ID,
            timeout_seconds=settings.IBKR_TIMEOUT_SECONDS,
            validation=validation,
            clock=clock,
        )

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        delay = self.reconnect_seconds
        try:
            while not stop.is_set():
                self.state(FeedState.CONNECTING, self.where)
                self._live = False
                try:
                    self._connection(stop)
                    detail = "connection lost"
                except _Stopped:
                    break
                except Exception as exc:  # noqa: BLE001 - run() never raises: report, retry
                    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    logger.warning("IBKR feed %s: %s", self.where, detail, exc_info=exc)
                if stop.is_set():
                    break
                if self._live:
                    delay = self.reconnect_seconds
                self.state(FeedState.DISCONNECTED, f"{detail}; reconnecting in {delay:g}s")
                if stop.wait(delay):
                    break
                delay = min(delay * 2, self.max_reconnect_seconds)
        finally:
            self.state(FeedState.STOPPED)

    def _connection(self, stop: threading.Event) -> None:
        """One connection: connect, subscribe, backfill, stream until it ends."""
        session = IbkrSession(self.host, self.port, self.client_id)
        decoder = session.ib.client.decoder
        decoder.logger = _DecoderLogger(decoder.logger, self)
        session.ib.client.conn.hasData.error_event += self._on_socket_error
        try:
            with session.on_loop():
                session.loop.run_until_complete(self._stream(session.ib, stop))
        finally:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - a half-open socket may fail to close
                logger.exception("IBKR feed %s: closing the session", self.where)

    # --- the stream (on the session's loop) -------------------------------------------

    async def _stream(self, ib: IB, stop: threading.Event) -> None:
        self._ib = ib
        self._queue = asyncio.Queue()
        self._wake = asyncio.Event()
        self._streams = {}
        self._broken_farms = set()
        self._link_lost = False
        watcher = asyncio.ensure_future(self._watch_stop(stop))
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        try:
            await self._unless_stopped(
                ib.connectAsync(
                    self.host,
                    self.port,
                    self.client_id,
                    timeout=self.timeout,
                    readonly=True,
                    raiseSyncErrors=True,
                    fetchFields=StartupFetch(0),
                )
            )
            self.connections += 1
            logger.info("IBKR feed connected to %s", self.where)
            for instrument in dict.fromkeys(s.sub.instrument for s in self._series):
                contract = Stock(instrument, self.exchange, self.currency)
                group = [s for s in self._series if s.sub.instrument == instrument]
                for each in group:
                    each.window, each.synced_to = None, None
                self._subscribe(ib, _Stream(instrument, contract, group))
            self.state(FeedState.BACKFILLING, f"{len(self._series)} series")
            for series in self._series:
                await self._backfill(ib, series)
            self._live = True
            self.state(FeedState.LIVE, self.where)
            while True:
                job = await self._queue.get()
                await self._handle(ib, job)
        finally:
            watcher.cancel()
            ib.errorEvent -= self._on_error
            ib.disconnectedEvent -= self._on_disconnected
            if ib.isConnected():
                for stream in list(self._streams.values()):
                    self._unsubscribe(ib, stream)
            self._streams = {}

    async def _watch_stop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(0.05)
        self._interrupt(("stop",))

    def _interrupt(self, job: tuple[Any, ...]) -> None:
        assert self._wake is not None
        assert self._queue is not None
        self._wake.set()
        self._queue.put_nowait(job)

    async def _unless_stopped(self, awaitable: Awaitable[_T]) -> _T:
        """Await ``awaitable``, abandoning it as soon as ``stop`` is set."""
        assert self._wake is not None
        task = asyncio.ensure_future(awaitable)
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({task, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
        if not task.done() and self._stop is not None and self._stop.is_set():
            task.cancel()
            raise _Stopped
        return await task

    def _check(self, ib: IB) -> None:
        if self._stop is not None and self._stop.is_set():
            raise _Stopped
        if not ib.isConnected():
            raise ConnectionError("connection lost")

    async def _pause(self, ib: IB, seconds: float) -> None:
        """Wait ``seconds``, cut short by stop or a lost connection (then raised)."""
        assert self._wake is not None
        self._check(ib)
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._check(ib)

    async def _handle(self, ib: IB, job: tuple[Any, ...]) -> None:
        kind = job[0]
        if kind == "stop":
            raise _Stopped
        if kind == "disconnected":
            raise ConnectionError("connection lost")
        if kind == "window":
            await self._on_window(ib, job[1], job[2])
        elif kind == "resubscribe":
            stream, delay = job[1], job[2]
            self._unsubscribe(ib, stream)
            await self._pause(ib, delay)
            self._subscribe(ib, stream)

    # --- real-time bars ---------------------------------------------------------------

    def _subscribe(self, ib: IB, stream: _Stream) -> None:
        stream.broken()
        bars = ib.reqRealTimeBars(stream.contract, BAR_SECONDS, "TRADES", self.use_rth)
        stream.bars = bars
        self._streams[bars.reqId] = stream

        def on_bars(bar_list: RealTimeBarList, _has_new: bool) -> None:
            try:
                received = list(bar_list)
                bar_list.clear()  # the list would otherwise grow for the life of the stream
                for bar in received:
                    self._on_five(stream, bar)
            except Exception:  # noqa: BLE001 - a bug here must not stop the decoder
                self.errors[-1] += 1
                logger.exception("IBKR feed %s: handling a 5-second bar", stream.instrument)

        bars.updateEvent += on_bars
        logger.info(
            "IBKR feed: 5-second bars of %s subscribed (reqId %s)", stream.instrument, bars.reqId
        )

    def _unsubscribe(self, ib: IB, stream: _Stream) -> None:
        bars, stream.bars = stream.bars, None
        if bars is None:
            return
        self._streams.pop(bars.reqId, None)
        try:
            if ib.isConnected():
                ib.cancelRealTimeBars(bars)
            else:
                ib.wrapper.endSubscription(bars)
        except (ConnectionError, OSError, KeyError):
            pass

    def _on_five(self, stream: _Stream, rt: RealTimeBar) -> None:
        """One 5-second bar: checked, then added to the window of every timeframe."""
        raw = repr(rt)
        gate = stream.series[0].gate
        bar: Bar | None
        try:
            bar = Bar(
                stream.instrument,
                rt.time.astimezone(UTC),
                _dec(rt.open_),
                _dec(rt.high),
                _dec(rt.low),
                _dec(rt.close),
                _dec(rt.volume),
            )
        except (InvalidOperation, ValueError, TypeError, OverflowError, AttributeError):
            bar = None
        if bar is None:
            reason: str | None = "unparseable"
        else:
            reason = validate_bar(bar, None)
            if reason is None and bar.ts.timestamp() % BAR_SECONDS:
                reason = MISALIGNED
            last = stream.last_ts
            if reason is None and last is not None and bar.ts <= last:
                reason = DUPLICATE_TIMESTAMP if bar.ts == last else OUT_OF_ORDER_TIMESTAMP
        if reason is not None or bar is None:
            gate.reject(f"5s bar: {reason}", raw)
            logger.warning(
                "IBKR feed %s: 5-second bar rejected (%s): %s", stream.instrument, reason, raw
            )
            stream.broken()  # the windows it falls in come from history
            return
        gap = stream.last_ts is None or bar.ts != stream.last_ts + FIVE
        stream.last_ts = bar.ts
        stream.retry_seconds = 0.0
        for series in stream.series:
            series.add(bar, gap=gap, closed=self._closed)

    def _closed(self, series: _Series, window: _Window) -> None:
        assert self._queue is not None
        self._queue.put_nowait(("window", series, window))

    async def _on_window(self, ib: IB, series: _Series, window: _Window) -> None:
        end = window.start + series.step
        if series.synced_to is not None and end <= series.synced_to:
            return  # already accounted for by history
        if window.complete and series.synced_to is not None and series.synced_to >= window.start:
            bar = window.bar(series.sub.instrument)
            if bar is not None:
                series.gate.offer(bar, raw=f"5s aggregate {bar!r}")
            series.synced_to = end
            return
        logger.info(
            "IBKR feed %s %s: window %s not fully covered live; asking history",
            series.sub.instrument,
            series.sub.timeframe,
            window.start.isoformat(),
        )
        await self._pause(ib, self.history_delay_seconds)  # let IB's history catch up
        await self._backfill(ib, series)

    # --- history ----------------------------------------------------------------------

    async def _backfill(self, ib: IB, series: _Series) -> None:
        """Emit every closed bar after the last emitted one; retry through pacing."""
        delay = self.pacing_seconds
        while True:
            self._check(ib)
            try:
                asked = asyncio.wait_for(ib.reqCurrentTimeAsync(), self.timeout)
                now = (await self._unless_stopped(asked)).astimezone(UTC)
                start = series.gate.last_ts or now - series.step * self.initial_bars
                if now - start > MAX_BACKFILL:
                    logger.warning(
                        "IBKR feed %s %s: last bar %s is older than %s; backfilling the last %s only",
                        series.sub.instrument,
                        series.sub.timeframe,
                        start.isoformat(),
                        MAX_BACKFILL,
                        MAX_BACKFILL,
                    )
                    start = now - MAX_BACKFILL
                bars = await self._history(ib, series, _duration(now - start + series.step))
            except RequestError as exc:
                if exc.code == HISTORICAL_PACING and NO_DATA_TEXT in exc.message:
                    bars = BarDataList()
                else:
                    if exc.code == HISTORICAL_PACING:
                        self.pacing_violations += 1
                    else:
                        self.errors[exc.code] += 1
                    logger.warning(
                        "IBKR feed %s %s: history refused (%s: %s); retrying in %gs",
                        series.sub.instrument,
                        series.sub.timeframe,
                        exc.code,
                        exc.message,
                        delay,
                    )
                    await self._pause(ib, delay)
                    delay = min(delay * 2, self.max_pacing_seconds)
                    continue
            except TimeoutError:
                self._check(ib)
                self.errors[0] += 1
                logger.warning(
                    "IBKR feed %s %s: no history answer within %gs; retrying in %gs",
                    series.sub.instrument,
                    series.sub.timeframe,
                    self.timeout,
                    delay,
                )
                await self._pause(ib, delay)
                delay = min(delay * 2, self.max_pacing_seconds)
                continue
            break
        emitted = 0
        for item in bars:
            bar = self._history_bar(series, item)
            if bar is None or bar.ts + series.step > now:
                continue  # the bar in progress (or not a bar): not closed yet
            emitted += series.gate.offer(bar, raw=repr(item))
        closed_to = _floor(now, series.step)
        if series.synced_to is None or closed_to > series.synced_to:
            series.synced_to = closed_to
        logger.info(
            "IBKR feed %s %s: history to %s, %s new bar(s)",
            series.sub.instrument,
            series.sub.timeframe,
            closed_to.isoformat(),
            emitted,
        )

    async def _history(self, ib: IB, series: _Series, duration: str) -> BarDataList:
        """One reqHistoricalData (as ``IB.reqHistoricalDataAsync``, with a timeout that
        raises instead of returning an empty list)."""
        contract = Stock(series.sub.instrument, self.exchange, self.currency)
        req_id = ib.client.getReqId()
        bars = BarDataList()
        bars.reqId = req_id
        future = ib.wrapper.startReq(req_id, contract, container=bars)
        self.history_requests += 1
        ib.client.reqHistoricalData(
            req_id, contract, "", duration, series.bar_size, "TRADES", self.use_rth, 2, False, []
        )
        try:
            await self._unless_stopped(asyncio.wait_for(future, self.timeout))
        except TimeoutError:
            if ib.isConnected():
                ib.client.cancelHistoricalData(req_id)
            raise
        return bars

    def _history_bar(self, series: _Series, item: BarData) -> Bar | None:
        when = item.date
        if not isinstance(when, datetime):  # a date: a daily bar, not asked for
            series.gate.reject("history bar without a time of day", repr(item))
            return None
        try:
            return Bar(
                series.sub.instrument,
                when.astimezone(UTC),
                _dec(item.open),
                _dec(item.high),
                _dec(item.low),
                _dec(item.close),
                _dec(item.volume),
            )
        except (InvalidOperation, ValueError, TypeError, OverflowError):
            series.gate.reject("unparseable", repr(item))
            return None

    # --- TWS messages -----------------------------------------------------------------

    def _on_disconnected(self) -> None:
        logger.warning("IBKR feed %s: disconnected", self.where)
        self._interrupt(("disconnected",))

    def _on_socket_error(self, _source: Any, error: Exception) -> None:
        self.malformed += 1

    def _on_error(self, req_id: int, code: int, message: str, _contract: Any) -> None:
        try:
            self._tws_message(req_id, code, message)
        except Exception:  # noqa: BLE001 - never let a handler bug stop the decoder
            logger.exception("IBKR feed: handling TWS message %s", code)

    def _tws_message(self, req_id: int, code: int, message: str) -> None:
        stream = self._streams.get(req_id)
        if code in FARM_OK:
            logger.info("IBKR feed: %s farm OK (%s): %s", FARM_OK[code], code, message)
            farm = FARM_OK[code]
            if farm in self._broken_farms:
                self._broken_farms.discard(farm)
                if self._live and not self._broken_farms and not self._link_lost:
                    self.state(FeedState.LIVE, f"{farm} farm connection is OK ({code})")
        elif code in FARM_BROKEN:
            farm = FARM_BROKEN[code]
            logger.warning("IBKR feed: %s farm broken (%s): %s", farm, code, message)
            self._broken_farms.add(farm)
            if farm == "market data":
                for each in list(self._streams.values()):
                    each.broken()
                self.state(FeedState.DISCONNECTED, f"{farm} farm connection is broken ({code})")
            else:
                self.state(self.current_state, f"{farm} farm connection is broken ({code})")
        elif code == FARM_INACTIVE:
            logger.info("IBKR feed: data farm inactive but available (%s): %s", code, message)
        elif code == CONNECTIVITY_LOST:
            self._link_lost = True
            for each in list(self._streams.values()):
                each.broken()
            self.state(FeedState.DISCONNECTED, f"TWS lost its connection to IB ({code})")
        elif code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
            self._link_lost = False
            for each in list(self._streams.values()):
                each.broken()
                if code == RESTORED_DATA_LOST:  # TWS dropped the subscriptions
                    self._queue_resubscribe(each, 0)
            if self._live:
                self.state(FeedState.LIVE, f"connectivity restored ({code})")
        elif code == BUST_EVENT and stream is not None:
            logger.warning("IBKR feed %s: bust event (%s), resubscribed", stream.instrument, code)
            stream.broken()
        elif stream is not None and not 2100 <= code < 2200:
            # The real-time subscription is dead (TWS cancels it): back off, subscribe again.
            if code == REALTIME_PACING:
                self.pacing_violations += 1
            else:
                self.errors[code] += 1
            delay = stream.retry_seconds or self.pacing_seconds
            stream.retry_seconds = min(delay * 2, self.max_pacing_seconds)
            logger.warning(
                "IBKR feed %s: 5-second bars refused (%s: %s); resubscribing in %gs",
                stream.instrument,
                code,
                message,
                delay,
            )
            self._queue_resubscribe(stream, delay)
        elif code == HISTORICAL_PACING or 2100 <= code < 2200:
            pass  # 162 is handled where the history request fails; 21xx are notices
        else:
            self.errors[code] += 1
            logger.warning("IBKR feed: TWS error %s (reqId %s): %s", code, req_id, message)

    def _queue_resubscribe(self, stream: _Stream, delay: float) -> None:
        assert self._queue is not None
        if self._ib is not None and stream.bars is not None:
            self._unsubscribe(self._ib, stream)  # no bars from it until resubscribed
        self._queue.put_nowait(("resubscribe", stream, delay))
