"""KrakenFeed against the loopback Kraken fake, through the real ccxt client.

The fake serves the recorded Coinbase BTC-USD 1-minute file (Apache-2.0, QuantConnect
Lean) as Kraken's XXBTZUSD candles on its market clock, which runs at ``SPEED`` x real
time (a minute passes in 0.1 s); the feed's clock is that same market clock and its
waits are scaled by the same factor. 2018-04-05 00:00 - 2018-04-06 23:59 is gap-free
in the file, so every test stays inside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.engine.feeds.base import FeedState, Subscription
from apps.engine.feeds.kraken import KrakenFeed
from apps.marketdata.domain.csvfile import Rejection, read_bars
from apps.marketdata.domain.validation import UNPARSEABLE
from apps.model.bars import Bar
from tests.fakes.kraken import KrakenFake
from tests.paths import SHARED_DATA

FILE = SHARED_DATA / "crypto" / "BTC-USD_1m_coinbase.csv"
SPEED = 600.0  # market seconds per real second
MINUTE = timedelta(minutes=1)
START = datetime(2018, 4, 5, 6, 0, 30, tzinfo=UTC)  # the fake's market time at the start
SINCE = datetime(2018, 4, 5, 5, 0, tzinfo=UTC)  # the last bar "already stored"
TIMEOUT = 20.0  # real seconds for anything to happen


def file_bars(after: datetime, through: datetime) -> list[Bar]:
    return [b for b in read_bars(FILE, instrument="BTC-USD") if after < b.ts <= through]


def aggregate(bars: list[Bar], step: timedelta) -> list[Bar]:
    groups: dict[datetime, list[Bar]] = {}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for b in bars:
        groups.setdefault(b.ts - (b.ts - epoch) % step, []).append(b)
    return [
        Bar(
            "BTC-USD",
            ts,
            g[0].open,
            max(b.high for b in g),
            min(b.low for b in g),
            g[-1].close,
            sum((b.volume for b in g), Decimal(0)),
        )
        for ts, g in sorted(groups.items())
    ]


@dataclass
class Sink:
    """Records what the feed pushes, with the venue's market time at each bar."""

    market: Callable[[], datetime]
    bars: list[tuple[Bar, datetime]] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)
    states: list[tuple[FeedState, str, float]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def on_bar(self, feed: str, timeframe: str, bar: Bar) -> None:
        with self.cond:
            self.bars.append((bar, self.market()))
            self.cond.notify_all()

    def on_reject(self, feed: str, rejection: Rejection) -> None:
        with self.cond:
            self.rejects.append(rejection)
            self.cond.notify_all()

    def on_state(self, feed: str, state: FeedState, detail: str = "") -> None:
        with self.cond:
            self.states.append((state, detail, time.time()))
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout=TIMEOUT):
                raise AssertionError(f"timed out waiting for {what}; states {self.state_names}")

    def wait_through(self, ts: datetime) -> None:
        self.wait_for(lambda: bool(self.bars) and self.bars[-1][0].ts >= ts, f"a bar at {ts}")

    def emitted(self, through: datetime) -> list[Bar]:
        with self.cond:
            return [b for b, _ in self.bars if b.ts <= through]

    @property
    def state_names(self) -> list[FeedState]:
        return [s for s, _, _ in self.states]


@pytest.fixture
def fake() -> Iterator[KrakenFake]:
    with KrakenFake() as fake:
        fake.load_ohlc("XBTUSD", FILE)
        fake.market.set(START, speed=SPEED)
        yield fake


class Runner:
    def __init__(self, fake: KrakenFake) -> None:
        self.fake = fake
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sink = Sink(fake.market.now_datetime)

    def start(
        self, *subs: Subscription, scaled: bool = True, **options: Any
    ) -> tuple[KrakenFeed, Sink]:
        settings: dict[str, Any] = {
            "api_url": self.fake.url,
            "rate_limit": False,
            "timeout_seconds": 2.0,
            "poll_delay_seconds": 2.0,
            "retry_seconds": 1.0,
            "backoff_initial_seconds": 5.0,
            "clock": self.fake.market.now_datetime,
        }
        if scaled:
            settings["wait"] = lambda stop, s: stop.wait(max(0.0, s) / SPEED)
        settings.update(options)
        feed = KrakenFeed(subs or (Subscription("BTC-USD", "1m", SINCE),), self.sink, **settings)
        thread = threading.Thread(target=feed.run, args=(self.stop,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return feed, self.sink

    def halt(self) -> float:
        """Stop the feed; return how long run() took to end (real seconds)."""
        began = time.monotonic()
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
            assert not thread.is_alive(), "run() did not end after stop"
        return time.monotonic() - began


@pytest.fixture
def runner(fake: KrakenFake) -> Iterator[Runner]:
    r = Runner(fake)
    yield r
    r.halt()


def assert_closed_when_emitted(sink: Sink, step: timedelta = MINUTE) -> None:
    for bar, market_now in sink.bars:
        assert bar.ts + step <= market_now, f"bar {bar.ts} emitted at {market_now}: not closed"


def test_backfill_then_live_bars_equal_the_file(runner: Runner, fake: KrakenFake) -> None:
    through = datetime(2018, 4, 5, 6, 20, tzinfo=UTC)
    feed, sink = runner.start()
    sink.wait_through(through)

    expected = file_bars(SINCE, through)
    assert len(expected) == 80  # 05:01 .. 06:20
    assert sink.emitted(through) == expected  # values, ts and order, no gap, no duplicate
    assert_closed_when_emitted(sink)
    assert sink.state_names[:3] == [FeedState.CONNECTING, FeedState.BACKFILLING, FeedState.LIVE]
    assert FeedState.DISCONNECTED not in sink.state_names
    assert sink.rejects == []
    # Every OHLC call asked for the right series, from the last bar emitted.
    calls = fake.calls_to("OHLC")
    assert {(c.params["pair"], c.params["interval"]) for c in calls} == {("XXBTZUSD", "1")}
    assert calls[0].params["since"] == str(int(SINCE.timestamp()))


def test_the_forming_frame_is_never_emitted(runner: Runner, fake: KrakenFake) -> None:
    fake.market.set(START, speed=0)  # the market clock stands still at 06:00:30
    feed, sink = runner.start()
    sink.wait_for(lambda: FeedState.LIVE in sink.state_names, "LIVE")
    # Kraken's answer held the forming 06:00 frame (as at its first instant); not emitted.
    assert sink.emitted(START)[-1].ts == datetime(2018, 4, 5, 5, 59, tzinfo=UTC)
    assert fake.calls_to("OHLC")

    fake.market.set(datetime(2018, 4, 5, 6, 1, 5, tzinfo=UTC), speed=0)  # 06:00 has closed
    at_0600 = datetime(2018, 4, 5, 6, 0, tzinfo=UTC)
    sink.wait_through(at_0600)
    assert sink.emitted(at_0600) == file_bars(SINCE, at_0600)  # the final values, not the forming
    assert_closed_when_emitted(sink)


def test_polls_again_until_kraken_commits_the_closed_frame(fake: KrakenFake) -> None:
    fake.commit_lag = 10.0  # Kraken commits a frame 10 s after it closes; the feed polls at +2 s
    runner = Runner(fake)
    try:
        feed, sink = runner.start()
        sink.wait_for(lambda: FeedState.LIVE in sink.state_names, "LIVE")
        live_from = len(fake.calls_to("OHLC"))
        through = datetime(2018, 4, 5, 6, 10, tzinfo=UTC)
        sink.wait_through(through)
        live_polls = len(fake.calls_to("OHLC")) - live_from
    finally:
        runner.halt()
    assert sink.emitted(through) == file_bars(SINCE, through)
    assert_closed_when_emitted(sink)
    # 10 live bars; each took a poll at +2 s and retries every second until +10 s.
    assert live_polls >= 30


def test_disconnects_mid_stream_and_during_backfill_leave_no_gap_or_duplicate(
    fake: KrakenFake,
) -> None:
    fake.ohlc_page = 2  # two committed candles an answer: a backfill takes several pages
    runner = Runner(fake)
    try:
        feed, sink = runner.start(
            Subscription("BTC-USD", "1m", datetime(2018, 4, 5, 5, 50, tzinfo=UTC)),
            backoff_initial_seconds=300.0,  # 5 market minutes pile up while disconnected
        )
        sink.wait_through(datetime(2018, 4, 5, 6, 3, tzinfo=UTC))
        sink.wait_for(lambda: FeedState.LIVE in sink.state_names, "LIVE")
        # Next OHLC calls: the live poll is cut mid-answer; after the reconnect the
        # first backfill page comes through and the second is dropped.
        fake.cut_next("OHLC")
        fake.pass_next("OHLC")
        fake.disconnect_next("OHLC")
        through = datetime(2018, 4, 5, 6, 30, tzinfo=UTC)
        sink.wait_through(through)
    finally:
        runner.halt()

    assert sink.emitted(through) == file_bars(datetime(2018, 4, 5, 5, 50, tzinfo=UTC), through)
    assert_closed_when_emitted(sink)
    names = sink.state_names
    assert names.count(FeedState.DISCONNECTED) == 2
    first = names.index(FeedState.DISCONNECTED)
    second = names.index(FeedState.DISCONNECTED, first + 1)
    assert names[first + 1 : second] == [FeedState.CONNECTING, FeedState.BACKFILLING]
    assert names[second + 1 : second + 4] == [
        FeedState.CONNECTING,
        FeedState.BACKFILLING,
        FeedState.LIVE,
    ]
    assert feed.reconnects == 2
    assert sink.rejects == []


def test_a_malformed_answer_is_counted_and_the_feed_continues(
    runner: Runner, fake: KrakenFake
) -> None:
    feed, sink = runner.start()
    sink.wait_through(datetime(2018, 4, 5, 6, 2, tzinfo=UTC))
    fake.malformed_next("OHLC", '{"error": [], "result": {"XXBTZUSD": [[1522908')
    through = datetime(2018, 4, 5, 6, 15, tzinfo=UTC)
    sink.wait_through(through)

    assert len(sink.rejects) == 1
    assert sink.rejects[0].reason == UNPARSEABLE
    assert "not a Kraken envelope" in sink.rejects[0].raw
    assert sink.rejects[0].source == "kraken:BTC-USD:1m"
    assert feed.gates[("BTC-USD", "1m")].rejected == 1
    assert FeedState.DISCONNECTED in sink.state_names
    assert sink.emitted(through) == file_bars(SINCE, through)


def test_an_answer_of_the_wrong_shape_is_counted_and_the_feed_continues(
    runner: Runner, fake: KrakenFake
) -> None:
    feed, sink = runner.start()
    sink.wait_through(datetime(2018, 4, 5, 6, 2, tzinfo=UTC))
    fake.corrupt_next("OHLC", lambda result: result.pop("last"))
    through = datetime(2018, 4, 5, 6, 10, tzinfo=UTC)
    sink.wait_through(through)

    assert [r.reason for r in sink.rejects] == [UNPARSEABLE]
    assert "'last'" in sink.rejects[0].raw
    assert FeedState.DISCONNECTED in sink.state_names
    assert sink.emitted(through) == file_bars(SINCE, through)


def test_a_malformed_row_is_rejected_and_the_rest_emitted(runner: Runner, fake: KrakenFake) -> None:
    bad_ts = int(datetime(2018, 4, 5, 5, 30, tzinfo=UTC).timestamp())
    bad_bar = datetime(2018, 4, 5, 5, 30, tzinfo=UTC)

    def corrupt(result: dict[str, Any]) -> None:
        for row in result["XXBTZUSD"]:
            if row[0] == bad_ts:
                row[2] = "n/a"

    fake.corrupt_next("OHLC", corrupt)  # the first answer: the backfill
    feed, sink = runner.start()
    through = datetime(2018, 4, 5, 6, 5, tzinfo=UTC)
    sink.wait_through(through)

    assert len(sink.rejects) == 1
    assert sink.rejects[0].reason == UNPARSEABLE
    assert '"n/a"' in sink.rejects[0].raw
    assert sink.emitted(through) == [b for b in file_bars(SINCE, through) if b.ts != bad_bar]
    assert FeedState.DISCONNECTED not in sink.state_names


def test_an_invalid_bar_is_rejected_by_validation(runner: Runner, fake: KrakenFake) -> None:
    bad_ts = int(datetime(2018, 4, 5, 5, 40, tzinfo=UTC).timestamp())

    def corrupt(result: dict[str, Any]) -> None:
        for row in result["XXBTZUSD"]:
            if row[0] == bad_ts:
                row[3] = "99999.0"  # low above high

    fake.corrupt_next("OHLC", corrupt)
    feed, sink = runner.start()
    through = datetime(2018, 4, 5, 6, 2, tzinfo=UTC)
    sink.wait_through(through)
    assert [r.reason for r in sink.rejects] == ["high_below_low"]
    assert len(sink.emitted(through)) == len(file_bars(SINCE, through)) - 1


def test_a_rate_limit_backs_off_and_the_feed_continues(runner: Runner, fake: KrakenFake) -> None:
    feed, sink = runner.start(rate_limit_backoff_seconds=180.0)  # 0.3 s of real time
    sink.wait_through(datetime(2018, 4, 5, 6, 2, tzinfo=UTC))
    fake.rate_limit_next("OHLC")
    through = datetime(2018, 4, 5, 6, 12, tzinfo=UTC)
    sink.wait_through(through)

    lost = [(d, at) for s, d, at in sink.states if s is FeedState.DISCONNECTED]
    assert len(lost) == 1
    assert "rate limit" in lost[0][0]
    next_call = min(c.at for c in fake.calls if c.at > lost[0][1])
    assert next_call - lost[0][1] >= 180.0 / SPEED * 0.9  # waited out the backoff
    assert sink.emitted(through) == file_bars(SINCE, through)
    assert sink.rejects == []


def test_a_5m_series_is_built_from_kraken_5m_candles(runner: Runner, fake: KrakenFake) -> None:
    feed, sink = runner.start(Subscription("BTC-USD", "5m", SINCE))
    through = datetime(2018, 4, 5, 6, 20, tzinfo=UTC)
    sink.wait_through(through)
    assert {c.params["interval"] for c in fake.calls_to("OHLC")} == {"5"}
    minutes = file_bars(SINCE - MINUTE, through + timedelta(minutes=4))
    expected = [b for b in aggregate(minutes, timedelta(minutes=5)) if b.ts > SINCE]
    assert len(expected) == 16  # 05:05 .. 06:20
    assert sink.emitted(through) == expected
    assert_closed_when_emitted(sink, timedelta(minutes=5))


def test_an_unknown_instrument_is_reported_not_raised(runner: Runner, fake: KrakenFake) -> None:
    feed, sink = runner.start(Subscription("DOGE-USD", "1m", SINCE))
    sink.wait_for(lambda: FeedState.DISCONNECTED in sink.state_names, "DISCONNECTED")
    detail = next(d for s, d, _ in sink.states if s is FeedState.DISCONNECTED)
    assert "DOGE-USD" in detail
    assert sink.bars == []


def test_stop_ends_run_promptly_while_waiting_for_the_next_close(
    runner: Runner, fake: KrakenFake
) -> None:
    fake.market.set(START, speed=1.0)
    feed, sink = runner.start(scaled=False)  # real waits: ~30 s to the next close
    sink.wait_for(lambda: FeedState.LIVE in sink.state_names, "LIVE")
    assert runner.halt() < 1.0
    assert sink.state_names[-1] is FeedState.STOPPED


def test_stop_ends_run_promptly_during_a_backoff(runner: Runner, fake: KrakenFake) -> None:
    fake.disconnect_next("OHLC")
    feed, sink = runner.start(scaled=False, backoff_initial_seconds=3600.0)
    sink.wait_for(lambda: FeedState.DISCONNECTED in sink.state_names, "DISCONNECTED")
    assert runner.halt() < 1.0
    assert sink.state_names[-1] is FeedState.STOPPED


def test_bad_settings_are_refused() -> None:
    sink = Sink(lambda: datetime.now(UTC))
    with pytest.raises(ValueError, match="retry_seconds"):
        KrakenFeed([Subscription("BTC-USD", "1m")], sink, retry_seconds=0)
    with pytest.raises(ValueError, match="unknown timeframe"):
        KrakenFeed([Subscription("BTC-USD", "2m")], sink)
