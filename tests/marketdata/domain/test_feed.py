"""ReplayFeed: merge order, pacing with an injected sleep, start, loop, rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from pathlib import Path

import pytest

from apps.marketdata.domain.csvfile import HEADER, Rejection
from apps.marketdata.domain.feed import Feed, ReplayFeed

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def write(tmp_path: Path, name: str, minutes: list[int], bad: tuple[str, ...] = ()) -> Path:
    rows = [
        f"{(T0 + timedelta(minutes=m)).strftime('%Y-%m-%dT%H:%M:%SZ')},10,12,9,11,1"
        for m in minutes
    ]
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows, *bad]) + "\n")
    return path


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def minutes(bars) -> list[tuple[str, int]]:
    return [(b.instrument, int((b.ts - T0).total_seconds() // 60)) for b in bars]


def test_replay_feed_is_a_feed_named_replay(tmp_path):
    feed = ReplayFeed(write(tmp_path, "A_1m.csv", [0]), speed=0)

    assert isinstance(feed, Feed)
    assert feed.name == "replay"
    assert ReplayFeed.name == "replay"


def test_replay_feed_merges_files_in_time_order_ties_in_path_order(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 2, 3, 5])
    b = write(tmp_path, "B_1m.csv", [1, 2, 4])

    bars = list(ReplayFeed([a, b], speed=0))

    assert minutes(bars) == [
        ("A", 0),
        ("B", 1),
        ("A", 2),
        ("B", 2),
        ("A", 3),
        ("B", 4),
        ("A", 5),
    ]


def test_replay_feed_paces_by_time_delta_over_speed(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 1, 3])
    b = write(tmp_path, "B_1m.csv", [1, 2])
    sleep = FakeSleep()

    bars = list(ReplayFeed([a, b], speed=60, sleep=sleep))

    # A0 (no sleep), A1 (+60s), B1 (same ts: no sleep), B2 (+60s), A3 (+60s)
    assert len(bars) == 5
    assert sleep.calls == [1.0, 1.0, 1.0]


def test_replay_feed_caps_a_single_sleep(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 1, 600])
    sleep = FakeSleep()

    list(ReplayFeed(a, speed=1, sleep=sleep, max_sleep=5))

    assert sleep.calls == [5.0, 5.0]


def test_replay_feed_sleeps_before_yielding_each_bar(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 2])
    sleep = FakeSleep()
    feed = iter(ReplayFeed(a, speed=2, sleep=sleep, max_sleep=3600))

    next(feed)
    assert sleep.calls == []
    next(feed)
    assert sleep.calls == [60.0]  # 120 s of data at 2x real time


def test_replay_feed_when_speed_zero_then_never_sleeps(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 1, 100])
    b = write(tmp_path, "B_1m.csv", [5, 6])
    sleep = FakeSleep()

    bars = list(ReplayFeed([a, b], speed=0, sleep=sleep))
    looped = list(islice(ReplayFeed([a, b], speed=0, sleep=sleep, loop=True), 20))

    assert len(bars) == 5
    assert len(looped) == 20
    assert sleep.calls == []


def test_replay_feed_start_skips_earlier_bars_without_sleeping(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 1, 2, 3])
    sleep = FakeSleep()

    bars = list(ReplayFeed(a, speed=60, sleep=sleep, start=T0 + timedelta(minutes=2)))

    assert minutes(bars) == [("A", 2), ("A", 3)]
    assert sleep.calls == [1.0]


def test_replay_feed_loop_shifts_timestamps_forward_each_pass(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 1, 2])
    b = write(tmp_path, "B_1m.csv", [1])
    sleep = FakeSleep()

    bars = list(islice(ReplayFeed([a, b], speed=60, sleep=sleep, loop=True), 9))

    # one pass spans 2 minutes; the next pass starts one bar step (1m) after it ends
    assert minutes(bars) == [
        ("A", 0),
        ("A", 1),
        ("B", 1),
        ("A", 2),
        ("A", 3),
        ("A", 4),
        ("B", 4),
        ("A", 5),
        ("A", 6),
    ]
    assert all(x.ts <= y.ts for x, y in pairwise(bars))
    assert sleep.calls == [1.0] * 6
    assert bars[4].close == bars[0].close


def test_replay_feed_loop_step_from_data_when_name_has_no_timeframe(tmp_path):
    a = write(tmp_path, "A.csv", [0, 5, 10])

    bars = list(islice(ReplayFeed(a, speed=0, loop=True), 6))

    assert [m for _, m in minutes(bars)] == [0, 5, 10, 15, 20, 25]


def test_replay_feed_loop_over_a_single_bar_still_advances(tmp_path):
    a = write(tmp_path, "A.csv", [0])

    bars = list(islice(ReplayFeed(a, speed=0, loop=True), 3))

    assert [m for _, m in minutes(bars)] == [0, 1, 2]


def test_replay_feed_loop_when_no_good_bars_then_stops(tmp_path):
    a = write(tmp_path, "A_1m.csv", [], bad=("junk",))

    assert list(ReplayFeed(a, speed=0, loop=True)) == []


def test_replay_feed_counts_rejections_and_forwards_them_once(tmp_path):
    a = write(tmp_path, "A_1m.csv", [0, 1], bad=("junk",))
    b = write(tmp_path, "B_1m.csv", [0], bad=("2024-01-01T00:00:00Z,1,1,1,1,1",))
    seen: list[Rejection] = []

    feed = ReplayFeed([a, b], speed=0, on_reject=seen.append)
    bars = list(feed)
    looped = ReplayFeed([a, b], speed=0, on_reject=seen.append, loop=True)
    list(islice(looped, 9))

    assert len(bars) == 3
    assert feed.rejected == 2
    assert feed.emitted == 3
    assert {(r.line, r.reason) for r in seen[:2]} == {
        (4, "unparseable"),
        (3, "duplicate_timestamp"),
    }
    assert looped.rejected == 2  # three passes, reported on the first only
    assert len(seen) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"paths": [], "speed": 0}, "at least one"),
        ({"speed": -1}, "speed"),
        ({"speed": 1, "max_sleep": -1}, "max_sleep"),
        ({"speed": 1, "start": datetime(2024, 1, 1)}, "timezone-aware"),
    ],
)
def test_replay_feed_rejects_bad_arguments(tmp_path, kwargs, message):
    kwargs.setdefault("paths", [write(tmp_path, "A_1m.csv", [0])])

    with pytest.raises(ValueError, match=message):
        ReplayFeed(**kwargs)
