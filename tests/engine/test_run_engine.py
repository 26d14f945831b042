"""manage.py run_engine on the dev replay: plans from the database, resume, plan changes live."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.audit.models import DecisionLog
from apps.engine.feeds.replay import ReplayLiveFeed
from apps.engine.live import LiveLoop
from apps.engine.management.commands.run_engine import engine_plans
from apps.engine.runner import Engine
from apps.engine.selectors import plans_active, plans_version
from apps.engine.services import plan_create, plan_set_active
from apps.marketdata.models import Bar, FeedStatus
from apps.marketdata.services import instrument_get_or_create
from tests.paths import REPO
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db(transaction=True)
SAMPLE = REPO / "data" / "sample"
BTC = SAMPLE / "BTC-USD_1m_coinbase.csv"
ETH = SAMPLE / "ETH-USD_1m_coinbase.csv"


def plan(symbol: str = "BTC-USD", **kw):
    account = paper_account("100000", max_order="2000")
    instrument_get_or_create(symbol=symbol)
    return plan_create(
        account=account,
        venue="paper",
        instrument=symbol,
        timeframe="1m",
        strategy=kw.pop("strategy", "sma_cross"),
        params=kw.pop("params", {"fast": "5", "slow": "20"}),
        stake=Decimal("1000"),
        actor="test",
        **kw,
    )


def engine(*args: str) -> str:
    out = StringIO()
    call_command("run_engine", "--data", str(BTC), "--speed", "0", "--no-loop", *args, stdout=out)
    return out.getvalue()


def test_run_engine_when_plan_active_then_replays_and_a_rerun_resumes_after_the_last_bar(
    eager_celery,
) -> None:
    plan()

    out = engine("--max-bars", "300")

    assert "1 plan(s) on 1 series from replay" in out
    assert "after 300 bars" in out
    assert Bar.objects.count() == 300
    status = FeedStatus.objects.get(feed="replay:BTC-USD:1m")
    assert status.bars_accepted == 300
    decided = DecisionLog.objects.count()
    assert decided > 0
    last = Bar.objects.latest("ts").ts

    out = engine("--max-bars", "100")

    assert f"BTC-USD 1m resumes after {last:%Y-%m-%d %H:%M}Z" in out
    assert Bar.objects.count() == 400
    assert Bar.objects.filter(ts__lte=last).count() == 300  # nothing before it again
    assert (
        not DecisionLog.objects.filter(bar_ts__lte=last)
        .exclude(pk__in=DecisionLog.objects.order_by("id").values("pk")[:decided])
        .exists()
    )


def test_run_engine_when_no_active_plan_then_says_how_to_add_one(eager_celery) -> None:
    with pytest.raises(CommandError, match="no active trading plan.*plans_seed"):
        engine()


def test_run_engine_when_plan_has_no_replay_file_then_names_it(eager_celery) -> None:
    plan("ETH-USD")
    with pytest.raises(CommandError, match="no replay file for ETH-USD 1m"):
        engine()


def test_run_engine_when_staging_then_refuses_the_replay(settings) -> None:
    from tradebot.env import Environment

    settings.ENVIRONMENT = Environment.STAGING
    plan()
    with pytest.raises(CommandError, match="staging/prod run live feeds"):
        engine("--source", "replay")


def test_run_engine_when_live_plan_on_paper_venue_then_refused_before_anything_starts(
    settings,
) -> None:
    plan()
    with pytest.raises(CommandError, match="venue paper: that is the dev replay"):
        engine("--source", "live")


def test_live_loop_when_plans_change_then_picked_up_without_a_restart(eager_celery) -> None:
    btc = plan("BTC-USD")
    specs = plans_active()
    loop_engine = Engine(plans=engine_plans(specs))
    version = plans_version()

    def feeds(subs, sink):
        return [ReplayLiveFeed(subs, sink, paths=[BTC, ETH], speed=3000.0)]

    def source():
        return plans_version(), engine_plans(plans_active())

    loop = LiveLoop(
        loop_engine,
        feeds_factory=feeds,
        plans_source=source,
        plans_version=version,
        housekeeping_every=0.1,
        max_bars=500,
    )

    def operator() -> None:
        try:
            while Bar.objects.filter(instrument__symbol="BTC-USD").count() < 60:
                time.sleep(0.05)
            plan("ETH-USD")  # a new series: the feeds restart with it
            while not Bar.objects.filter(instrument__symbol="ETH-USD").exists():
                time.sleep(0.05)
            plan_set_active(plan=btc, active=False, actor="test")  # BTC stops
        finally:
            connection.close()

    thread = threading.Thread(target=operator)
    thread.start()
    loop.run()
    thread.join(10)

    eth = Bar.objects.filter(instrument__symbol="ETH-USD").count()
    assert eth > 0
    assert loop_engine.series() == [("ETH-USD", "1m")]
    # BTC stopped when its plan was deactivated: its bars end before the loop did
    btc_last = Bar.objects.filter(instrument__symbol="BTC-USD").latest("ts").ts
    assert Bar.objects.filter(instrument__symbol="ETH-USD", ts__gt=btc_last).exists()


def test_run_engine_when_it_returns_then_the_signal_handlers_are_restored(eager_celery) -> None:
    import signal

    plan()
    before = signal.getsignal(signal.SIGTERM)

    engine("--max-bars", "5")

    assert signal.getsignal(signal.SIGTERM) is before  # forked children still die on SIGTERM
