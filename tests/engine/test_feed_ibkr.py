"""IbkrFeed over loopback: the real ib_async client against TwsFake's TWS API socket,
serving recorded SPY minutes (shared/data/equity/SPY_1m.csv) on a market clock the test
moves. Every series check compares the emitted bars with the file itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.engine.feeds.base import FeedState, Subscription
from apps.engine.feeds.ibkr import IbkrFeed
from apps.marketdata.domain.csvfile import Rejection
from apps.model.bars import Bar
from tests.fakes.tws import TwsFake, read_minutes, split_minute
from tests.paths import SHARED_DATA

SPY_FILE = SHARED_DATA / "equity" / "SPY_1m.csv"
MINUTE = timedelta(minutes=1)
CLIENT_ID = 11
SINCE = datetime(2013, 10, 7, 11, 30, tzinfo=UTC)  # the last bar "already stored"
START = datetime(2013, 10, 7, 11, 45, 30, tzinfo=UTC)  # the market clock at start: mid-minute
WAIT = 15.0


def utc(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2013, 10, 7, hh, mm, ss, tzinfo=UTC)


MINUTES = read_minutes(SPY_FILE)


def file_bars(since: datetime, until: datetime, step: timedelta = MINUTE) -> list[Bar]:
    """The file's bars of ``step`` (aggregated from its minutes, windows aligned on UTC)
    after ``since`` and closed by ``until``."""
    seconds = int(step.total_seconds())
    windows: dict[datetime, list[tuple[Decimal, ...]]] = {}
    for ts, row in MINUTES:
        epoch = int(ts.timestamp())
        start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
        if start > since and start + step <= until:
            windows.setdefault(start, []).append(row)
    return [
        Bar(
            "SPY",
            start,
            rows[0][0],
            max(r[1] for r in rows),
            min(r[2] for r in rows),
            rows[-1][3],
            sum((r[4] for r in rows), Decimal(0)),
        )
        for start, rows in sorted(windows.items())
    ]


def eventually(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll ``condition`` (a feed counter: nothing signals it) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class RecordingSink:
    """What the feed hands the engine, in order; ``wait`` blocks until a condition holds."""

    def __init__(self) -> None:
        self.bars: dict[str, list[Bar]] = {}
        self.rejects: list[Rejection] = []
        self.states: list[tuple[FeedState, str]] = []
        self._changed = threading.Condition()

    def on_bar(self, feed: str, timeframe: str, bar: Bar) -> None:
        with self._changed:
            self.bars.setdefault(timeframe, []).append(bar)
            self._changed.notify_all()

    def on_reject(self, feed: str, rejection: Rejection) -> None:
        with self._changed:
            self.rejects.append(rejection)
            self._changed.notify_all()

    def on_state(self, feed: str, state: FeedState, detail: str = "") -> None:
        with self._changed:
            self.states.append((state, detail))
            self._changed.notify_all()

    def wait(self, condition: Callable[[RecordingSink], bool], timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout)

    def series(self, timeframe: str = "1m") -> list[Bar]:
        with self._changed:
            return list(self.bars.get(timeframe, []))

    def count(self, state: FeedState) -> int:
        with self._changed:
            return sum(1 for s, _ in self.states if s == state)


class Running:
    """A feed running in its thread, with the fake and the sink it reports to."""

    def __init__(self, fake: TwsFake, feed: IbkrFeed, sink: RecordingSink) -> None:
        self.fake, self.feed, self.sink = fake, feed, sink
        self.stop = threading.Event()
        self.thread = threading.Thread(target=feed.run, args=(self.stop,), name="ibkr-feed")

    def start(self) -> Running:
        self.thread.start()
        return self

    def halt(self, timeout: float = 5.0) -> float:
        began = time.monotonic()
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "IbkrFeed.run did not return after stop"
        return time.monotonic() - began

    def live(self, times: int = 1) -> None:
        assert self.sink.wait(lambda s: s.count(FeedState.LIVE) >= times), self.sink.states

    def step_to(self, to: datetime, timeframe: str = "1m", step: timedelta = MINUTE) -> None:
        """Move the market clock to ``to`` one minute at a time; after each minute, wait
        until the emitted series is the file's up to that minute."""
        now = self.fake.market_time()
        assert now is not None
        while now < to:
            now = min(to, (now.replace(second=0) + MINUTE))
            self.fake.advance_market(now)
            expected = file_bars(SINCE, now, step)

            def caught_up(sink: RecordingSink, expected: list[Bar] = expected) -> bool:
                return sink.series(timeframe) == expected

            assert self.sink.wait(caught_up), (
                f"at {now}: emitted {self.sink.series(timeframe)[-3:]} expected {expected[-3:]}"
            )


@pytest.fixture
def fake() -> Iterator[TwsFake]:
    with TwsFake() as tws:
        tws.load_bars("SPY", SPY_FILE)
        tws.set_market_time(START)
        yield tws


@pytest.fixture
def start_feed(fake: TwsFake) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(
        subscriptions: list[Subscription] | None = None, *, go: bool = True, **options: Any
    ) -> Running:
        sink = RecordingSink()
        kwargs: dict[str, Any] = {
            "host": fake.host,
            "port": fake.port,
            "client_id": CLIENT_ID,
            "timeout_seconds": 3.0,
            "reconnect_seconds": 0.05,
            "pacing_seconds": 0.05,
            "history_delay_seconds": 0.0,
        }
        kwargs.update(options)
        feed = IbkrFeed(subscriptions or [Subscription("SPY", "1m", SINCE)], sink, **kwargs)
        running = Running(fake, feed, sink)
        started.append(running)
        return running.start() if go else running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.halt()


# --- the fake's 5-second bars ---------------------------------------------------------


def test_split_minute_when_aggregated_then_equals_the_recorded_minute() -> None:
    for _ts, row in MINUTES[:2000]:
        parts = split_minute(row)
        traded = [p for p in parts if p[4] > 0]
        assert len(parts) == 12
        aggregate = (
            traded[0][0],
            max(p[1] for p in traded),
            min(p[2] for p in traded),
            traded[-1][3],
            sum((p[4] for p in parts), Decimal(0)),
        )
        assert aggregate == row
        assert all(p[2] <= min(p[0], p[3]) and p[1] >= max(p[0], p[3]) for p in parts)


# --- the series -----------------------------------------------------------------------


def test_stream_when_backfilled_then_live_then_series_equals_the_file(fake, start_feed) -> None:
    run = start_feed()
    run.live()
    # Backfill: 11:31..11:44 from history; TWS also sent the 11:45 bar in progress: not emitted.
    assert run.sink.series() == file_bars(SINCE, START)
    assert run.sink.series()[-1].ts == utc(11, 44)
    # Live: 11:45 (partly seen live: from history once closed), then minute after minute
    # from 5-second bars, across 11:59 (no trades: TWS sends zero-volume bars, no bar).
    run.step_to(utc(12, 20))
    assert utc(11, 59) not in {b.ts for b in run.sink.series()}
    assert run.sink.series() == file_bars(SINCE, utc(12, 20))
    # One request at start, one for the window the subscription started in; the rest live.
    assert fake.call_count("reqHistoricalData") == 2
    assert fake.call_count("reqRealTimeBars") == 1
    assert run.sink.rejects == []
    assert run.feed.connections == 1


def test_stream_when_a_minute_is_half_done_then_it_is_emitted_only_once_closed(
    fake, start_feed
) -> None:
    run = start_feed()
    run.live()
    run.step_to(utc(11, 50))
    fake.advance_market(utc(11, 50, 30))  # half of 11:50's 5-second bars
    fake.advance_market(utc(11, 51))
    expected = file_bars(SINCE, utc(11, 51))
    assert run.sink.wait(lambda s: s.series() == expected), run.sink.series()[-2:]
    assert run.sink.series()[-1] == expected[-1]  # the whole minute, not its first half


def test_stream_when_two_timeframes_then_5m_is_the_aggregate_of_the_file(fake, start_feed) -> None:
    run = start_feed([Subscription("SPY", "1m", SINCE), Subscription("SPY", "5m", SINCE)])
    run.live()
    run.step_to(utc(12, 21))
    assert run.sink.series("1m") == file_bars(SINCE, utc(12, 21))
    five = file_bars(SINCE, utc(12, 21), timedelta(minutes=5))
    assert run.sink.wait(lambda s: s.series("5m") == five), run.sink.series("5m")
    assert [b.ts for b in five][-1] == utc(12, 15)
    assert fake.call_count("reqRealTimeBars") == 1  # one stream for both timeframes


def test_feed_without_since_when_started_then_takes_recent_history(fake, start_feed) -> None:
    run = start_feed([Subscription("SPY", "1m")], initial_bars=10)
    run.live()
    series = run.sink.series()
    assert len(series) >= 10  # at least the 10 asked for (the duration rounds up)
    assert series == [b for b in file_bars(utc(11, 0), START) if b.ts >= series[0].ts]
    assert series[-1].ts == utc(11, 44)


# --- connection faults ----------------------------------------------------------------


def test_disconnect_when_mid_stream_then_reconnects_and_series_equals_the_file(
    fake, start_feed
) -> None:
    run = start_feed()
    run.live()
    run.step_to(utc(11, 52))
    assert fake.drop_connections() == 1
    fake.advance_market(utc(11, 56, 15))  # trading goes on while the feed is away
    run.live(times=2)
    run.step_to(utc(12, 10))
    assert run.sink.series() == file_bars(SINCE, utc(12, 10))
    states = [s for s, _ in run.sink.states]
    assert FeedState.DISCONNECTED in states[states.index(FeedState.LIVE) :]
    assert run.feed.connections == 2


def test_disconnect_when_during_backfill_then_reconnects_and_series_equals_the_file(
    fake, start_feed
) -> None:
    fake.drop_connection_on_next_historical()
    run = start_feed()
    run.live()
    assert run.feed.connections == 2
    assert run.sink.series() == file_bars(SINCE, START)
    # And again while repairing the first live window from history.
    fake.drop_connection_on_next_historical()
    run.step_to(utc(11, 50))
    run.live(times=2)
    run.step_to(utc(12, 0))
    assert run.sink.series() == file_bars(SINCE, utc(12, 0))
    assert run.feed.connections == 3


def test_connection_when_refused_then_retries_until_tws_accepts(fake, start_feed) -> None:
    fake.refuse_connections()
    run = start_feed()
    assert run.sink.wait(lambda s: s.count(FeedState.DISCONNECTED) >= 2)
    fake.accept_connections()
    run.live()
    assert run.sink.series() == file_bars(SINCE, START)


# --- TWS messages ---------------------------------------------------------------------


def test_farm_messages_when_received_then_logged_and_the_series_is_undisturbed(
    fake, start_feed
) -> None:
    run = start_feed()
    run.live()
    fake.emit_error(2104, "Market data farm connection is OK:usfarm")
    fake.emit_error(2106, "HMDS data farm connection is OK:ushmds")
    fake.emit_error(2158, "Sec-def data farm connection is OK:secdefnj")
    fake.emit_error(
        2108, "Market data farm connection is inactive but should be available upon demand.:usfarm"
    )
    run.step_to(utc(11, 50))
    fake.advance_market(utc(11, 50, 20))
    fake.break_market_data_farm()
    assert run.sink.wait(lambda s: s.states[-1][0] == FeedState.DISCONNECTED)
    assert "market data farm" in run.sink.states[-1][1]
    fake.advance_market(utc(11, 53, 35))  # no 5-second bars while the farm is down
    fake.restore_market_data_farm()
    assert run.sink.wait(lambda s: s.states[-1][0] == FeedState.LIVE)
    run.step_to(utc(12, 5))
    assert run.sink.series() == file_bars(SINCE, utc(12, 5))
    assert run.feed.errors == {}
    assert run.feed.connections == 1


@pytest.mark.parametrize(("restored", "subscriptions"), [(1101, 2), (1102, 1)])
def test_tws_link_when_lost_and_restored_then_reported_and_the_series_is_undisturbed(
    fake, start_feed, restored, subscriptions
) -> None:
    run = start_feed()
    run.live()
    run.step_to(utc(11, 50))
    fake.emit_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    assert run.sink.wait(lambda s: s.states[-1][0] == FeedState.DISCONNECTED)
    assert "1100" in run.sink.states[-1][1]
    fake.advance_market(utc(11, 51, 40))
    fake.emit_error(restored, "Connectivity between IB and Trader Workstation has been restored")
    assert run.sink.wait(lambda s: s.states[-1][0] == FeedState.LIVE)
    # 1101 (data lost): TWS dropped the subscription, the feed makes it again.
    assert fake.wait_for_calls("reqRealTimeBars", subscriptions)
    run.step_to(utc(12, 0))
    assert run.sink.series() == file_bars(SINCE, utc(12, 0))
    assert fake.call_count("reqRealTimeBars") == subscriptions
    assert run.feed.connections == 1


def test_historical_pacing_violation_when_received_then_backs_off_and_continues(
    fake, start_feed
) -> None:
    fake.fail_next_historical(
        162, "Historical Market Data Service error message:Historical data request pacing violation"
    )
    run = start_feed()
    run.live()
    assert run.feed.pacing_violations == 1
    assert run.sink.series() == file_bars(SINCE, START)
    assert fake.call_count("reqHistoricalData") == 2  # refused, then asked again
    run.step_to(utc(11, 55))
    assert run.sink.series() == file_bars(SINCE, utc(11, 55))
    assert run.feed.connections == 1


def test_realtime_pacing_violation_when_received_then_resubscribes_and_continues(
    fake, start_feed
) -> None:
    run = start_feed()
    run.live()
    run.step_to(utc(11, 50))
    fake.advance_market(utc(11, 50, 40))
    assert (
        fake.fail_realtime(420, "Invalid Real-time Query:Historical data request pacing violation")
        == 1
    )
    assert fake.wait_for_calls("reqRealTimeBars", 2)
    fake.advance_market(utc(11, 52, 10))  # partly while no subscription was live
    run.step_to(utc(12, 5))
    assert run.sink.series() == file_bars(SINCE, utc(12, 5))
    assert run.feed.pacing_violations == 1
    assert run.feed.connections == 1


def test_realtime_pacing_when_refused_at_subscription_then_retries(fake, start_feed) -> None:
    fake.fail_next_realtime(420, "Invalid Real-time Query:Historical data request pacing violation")
    run = start_feed()
    run.live()
    assert fake.wait_for_calls("reqRealTimeBars", 2)
    run.step_to(utc(11, 55))
    assert run.sink.series() == file_bars(SINCE, utc(11, 55))
    assert run.feed.pacing_violations == 1


def test_malformed_messages_when_received_then_counted_rejected_and_the_stream_goes_on(
    fake, start_feed
) -> None:
    run = start_feed()
    run.live()
    run.step_to(utc(11, 48))
    fake.advance_market(utc(11, 48, 20))
    fake.send_malformed("bad_realtime_bar")
    fake.send_malformed("garbage")
    fake.send_malformed("bad_historical")
    # A 5-second bar that decodes but is not a bar: high below low.
    p = Decimal("167.00")
    assert fake.send_realtime_bar("SPY", utc(11, 48, 20), (p, p - 1, p + 1, p, Decimal(100))) == 1
    assert run.sink.wait(lambda s: len(s.rejects) == 1)
    assert eventually(lambda: run.feed.malformed == 3)
    run.step_to(utc(12, 0))
    assert run.sink.series() == file_bars(SINCE, utc(12, 0))  # 11:48 repaired from history
    assert run.sink.rejects[0].reason == "5s bar: high_below_low"
    assert run.sink.rejects[0].source == "ibkr:SPY:1m"
    assert run.feed.connections == 1


def test_other_tws_error_when_received_then_counted(fake, start_feed) -> None:
    run = start_feed()
    run.live()
    fake.emit_error(10197, "No market data during competing live session")
    assert eventually(lambda: run.feed.errors[10197] == 1)
    run.step_to(utc(11, 50))
    assert run.sink.series() == file_bars(SINCE, utc(11, 50))


# --- contracts, stop, configuration -----------------------------------------------------


def test_aapl_when_streamed_then_asks_tws_for_the_smart_usd_stock(fake, start_feed) -> None:
    run = start_feed([Subscription("AAPL", "1m", SINCE)])
    run.live()  # no AAPL data in the fake: 162 "query returned no data" is not pacing
    assert run.feed.pacing_violations == 0
    assert run.sink.series() == []
    realtime = fake.calls("reqRealTimeBars")[0].fields
    assert realtime[4:6] + realtime[10:11] + realtime[12:13] == ["AAPL", "STK", "SMART", "USD"]
    assert realtime[15:17] == ["5", "TRADES"]
    history = fake.calls("reqHistoricalData")[0].fields
    assert history[3:5] + history[9:10] + history[11:12] == ["AAPL", "STK", "SMART", "USD"]
    assert history[15:17] == ["", "1 min"]  # until now, 1-minute bars
    assert history[19:22] == ["TRADES", "2", "0"]  # epoch dates, no keepUpToDate


def test_stop_when_live_then_run_returns_promptly(fake, start_feed) -> None:
    run = start_feed()
    run.live()
    assert run.halt() < 1.0
    assert run.sink.states[-1][0] == FeedState.STOPPED
    assert fake.wait_for_calls("cancelRealTimeBars", 1)


def test_stop_when_waiting_to_reconnect_then_run_returns_promptly(fake, start_feed) -> None:
    fake.refuse_connections()
    run = start_feed(reconnect_seconds=30.0)
    assert run.sink.wait(lambda s: s.count(FeedState.DISCONNECTED) == 1)
    assert run.halt() < 1.0
    assert run.sink.states[-1][0] == FeedState.STOPPED


def test_stop_when_backing_off_a_pacing_violation_then_run_returns_promptly(
    fake, start_feed
) -> None:
    fake.fail_next_historical(162, "Historical data request pacing violation")
    run = start_feed(pacing_seconds=30.0)
    assert eventually(lambda: run.feed.pacing_violations == 1)
    assert run.halt() < 1.0
    assert run.sink.states[-1][0] == FeedState.STOPPED


def test_stop_when_history_never_answers_then_run_returns_promptly(fake, start_feed) -> None:
    fake.hold_next_historical()
    run = start_feed(timeout_seconds=30.0)
    assert fake.wait_for_calls("reqHistoricalData", 1)
    assert run.halt() < 1.0


@pytest.mark.parametrize("timeframe", ["4h", "1d"])
def test_feed_when_timeframe_is_session_based_then_refused(timeframe) -> None:
    with pytest.raises(ValueError, match=f"timeframe '{timeframe}' of AAPL is not supported"):
        IbkrFeed([Subscription("AAPL", timeframe)], RecordingSink(), host="h", port=1, client_id=1)


def test_feed_when_timeframe_unknown_then_refused() -> None:
    with pytest.raises(ValueError, match="unknown timeframe '2m'"):
        IbkrFeed([Subscription("AAPL", "2m")], RecordingSink(), host="h", port=1, client_id=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": ""}, "host is empty"),
        ({"port": 0}, "port 0 is not a TCP port"),
        ({"client_id": -1}, "client id -1"),
        ({"pacing_seconds": 0}, "pacing_seconds 0 must be > 0"),
    ],
)
def test_feed_when_misconfigured_then_refused(options, message) -> None:
    kwargs: dict[str, Any] = {"host": "127.0.0.1", "port": 7497, "client_id": 1, **options}
    with pytest.raises(ValueError, match=message):
        IbkrFeed([Subscription("AAPL", "1m")], RecordingSink(), **kwargs)
