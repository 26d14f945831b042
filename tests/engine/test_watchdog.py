"""The market-data watchdog: alert, then PAUSE, then back after reconciliation (real DB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from apps.brokers.models import ReconciliationRun
from apps.engine.live import engine_heartbeat
from apps.engine.management.commands.engine_health import engine_health
from apps.engine.runner import Engine
from apps.engine.watchdog import (
    ACTOR_FEED_WATCHDOG,
    WatchedSeries,
    equity_session_open,
    feeds_watch,
)
from apps.marketdata.models import FeedStatus
from apps.marketdata.services import instrument_get_or_create
from apps.notifications.models import Alert
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange
from apps.risk.services.modes import system_mode_get, system_mode_set
from tests.engine.restarts import sma_plan
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York
SATURDAY = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)


def last_bar(feed: str, seconds_ago: float, now: datetime = NOW) -> None:
    FeedStatus.objects.update_or_create(
        feed=feed, defaults={"last_update": now - timedelta(seconds=seconds_ago)}
    )


@pytest.fixture
def btc(db):
    instrument_get_or_create(symbol="BTC-USD")
    account = paper_account()
    return [WatchedSeries("BTC-USD", "1m", (account.pk,))]


def test_watch_when_series_on_time_then_nothing_happens(btc) -> None:
    last_bar("kraken:BTC-USD:1m", 60 + 30)  # 30 s past due

    (age,) = feeds_watch(series=btc, now=NOW)

    assert age.name == "kraken:BTC-USD:1m"
    assert age.late_by == pytest.approx(30)
    assert not Alert.objects.exists()
    assert system_mode_get() is SystemMode.NORMAL


def test_watch_when_late_past_alert_limit_then_alert_first_mode_unchanged(btc) -> None:
    last_bar("kraken:BTC-USD:1m", 60 + 130)

    feeds_watch(series=btc, now=NOW)
    feeds_watch(series=btc, now=NOW + timedelta(seconds=5))

    alert = Alert.objects.get()
    assert alert.code == "data_feed_stale:kraken:BTC-USD:1m"
    assert alert.severity == "critical"
    assert system_mode_get() is SystemMode.NORMAL


def test_watch_when_stale_then_pause_and_back_only_after_clean_reconciliation(btc) -> None:
    system_mode_set(mode="observation", actor="test", source="cli", reason="watching")
    last_bar("kraken:BTC-USD:1m", 60 + 301)

    feeds_watch(series=btc, now=NOW)

    assert system_mode_get() is SystemMode.PAUSE
    change = ModeChange.objects.latest("id")
    assert change.actor == ACTOR_FEED_WATCHDOG
    assert "kraken:BTC-USD:1m" in change.reason
    runs_before = ReconciliationRun.objects.count()

    # The feed is back: reconciled, then the mode it had before (OBSERVATION).
    last_bar("kraken:BTC-USD:1m", 5, NOW + timedelta(minutes=10))
    feeds_watch(series=btc, now=NOW + timedelta(minutes=10))

    assert ReconciliationRun.objects.count() == runs_before + 1
    assert ReconciliationRun.objects.latest("id").outcome == "clean"
    assert system_mode_get() is SystemMode.OBSERVATION
    assert Alert.objects.get().resolved_at is not None


def test_watch_when_operator_paused_meanwhile_then_feed_return_does_not_resume(btc) -> None:
    last_bar("kraken:BTC-USD:1m", 60 + 400)
    feeds_watch(series=btc, now=NOW)
    # An operator takes over: looks in OBSERVATION, then pauses on purpose.
    system_mode_set(mode="observation", actor="user:ops", source="panel", reason="look")
    system_mode_set(mode="pause", actor="user:ops", source="panel", reason="investigating")

    last_bar("kraken:BTC-USD:1m", 5, NOW + timedelta(minutes=10))
    feeds_watch(series=btc, now=NOW + timedelta(minutes=10))

    assert system_mode_get() is SystemMode.PAUSE


def test_watch_when_equity_market_closed_then_not_judged(db) -> None:
    instrument_get_or_create(symbol="AAPL")
    last_bar("ibkr:AAPL:1m", 3600 * 20, SATURDAY)

    (age,) = feeds_watch(series=[WatchedSeries("AAPL", "1m")], now=SATURDAY)

    assert not age.watched
    assert system_mode_get() is SystemMode.NORMAL
    assert equity_session_open(NOW)
    assert not equity_session_open(SATURDAY)
    assert not equity_session_open(datetime(2026, 3, 4, 21, 30, tzinfo=UTC))  # 16:30 NY


def test_engine_health_when_heartbeat_and_series_fresh_then_healthy_else_says_which(
    btc, settings
) -> None:
    engine = Engine(plans=[])
    engine.plans = ()  # no plan: unhealthy, "trades nothing"
    engine_heartbeat(engine, now=NOW)
    healthy, lines = engine_health(NOW, max_heartbeat_age=60)
    assert not healthy
    assert "trades nothing" in lines[-1]

    engine.plans_set([sma_plan(paper_account(), "BTC-USD")])
    engine_heartbeat(engine, now=NOW)
    last_bar("kraken:BTC-USD:1m", 61)
    healthy, lines = engine_health(NOW + timedelta(seconds=10), max_heartbeat_age=60)
    assert healthy, lines

    last_bar("kraken:BTC-USD:1m", 60 + settings.DATA_FEED_STALE_SECONDS + 1)
    healthy, lines = engine_health(NOW, max_heartbeat_age=60)
    assert not healthy
    assert any(line.startswith("FAIL kraken:BTC-USD:1m") for line in lines)

    healthy, lines = engine_health(NOW + timedelta(seconds=120), max_heartbeat_age=60)
    assert lines[0].startswith("FAIL loop: heartbeat 120 s ago")


def test_engine_health_command_when_no_heartbeat_then_exit_1(db) -> None:
    from django.core.cache import cache

    from apps.engine.live import HEARTBEAT_KEY

    cache.delete(HEARTBEAT_KEY)
    with pytest.raises(SystemExit) as exc:
        call_command("engine_health")
    assert exc.value.code == 1
