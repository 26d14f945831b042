"""Daily checklists: built from the database, stored, shown, ticked, sent to Telegram
(python-telegram-bot against a loopback fake of the Bot API)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import decision_record
from apps.brokers.models import Discrepancy
from apps.brokers.services.reconcile import reconcile_account
from apps.marketdata.models import FeedStatus
from apps.notifications.models import Alert, Delivery, Notification
from apps.ops.checklists import checklist_items
from apps.ops.models import ChecklistRun, MaintenanceRun
from apps.ops.services.checklists import checklist_item_tick, checklist_run
from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_set
from apps.trading.models import EquitySnapshot, Order, Position
from tests.fakes.telegram import TOKEN, bot_api_server
from tests.panel.conftest import otp_login
from tests.trading.factories import accepted_order, instrument, paper_account

pytestmark = pytest.mark.django_db


def by_key(items):
    return {i["key"]: i for i in items}


# --- pre-market -----------------------------------------------------------------------------


def test_pre_market_when_all_fine_then_every_automatic_item_ok_and_calendar_todo():
    # Arrange
    FeedStatus.objects.create(feed="replay", last_update=timezone.now())
    account = paper_account()
    Position.objects.create(
        account=account,
        instrument=instrument("BTC-USD"),
        quantity=Decimal("0.5"),
        avg_price=Decimal("60000"),
    )
    # Act
    items = by_key(checklist_items(kind="pre", now=timezone.now()))
    # Assert
    assert list(items) == [
        "mode",
        "overnight_alerts",
        "broker",
        "data_feed",
        "positions",
        "economic_calendar",
    ]
    for key in ("mode", "overnight_alerts", "broker", "data_feed", "positions"):
        assert items[key]["status"] == "ok", items[key]
    assert "BTC-USD 0.5 @ 60000" in items["positions"]["detail"]
    assert items["economic_calendar"] == {
        "key": "economic_calendar",
        "label": "Economic calendar (risk events)",
        "status": "todo",
        "detail": "check today's events; tick when done",
        "manual": True,
    }


def test_pre_market_when_paused_stale_feed_and_open_critical_alert_then_fails_named():
    system_mode_set(mode=SystemMode.PAUSE, actor="test", source="cli", reason="t")
    FeedStatus.objects.create(feed="replay", last_update=timezone.now() - timedelta(hours=2))
    Alert.objects.create(severity="critical", code="feed.stale", message="stale")
    Alert.objects.create(severity="info", code="note", message="fyi")
    items = by_key(checklist_items(kind="pre", now=timezone.now()))
    assert items["mode"]["status"] == "fail"
    assert items["mode"]["detail"] == "PAUSE"
    assert items["data_feed"]["status"] == "fail"
    assert items["overnight_alerts"]["status"] == "fail"
    assert items["overnight_alerts"]["detail"] == "1 critical, 1 info; still open: feed.stale"


# --- post-market ----------------------------------------------------------------------------


def test_post_market_when_signal_without_sent_order_then_orders_vs_signals_fails():
    # Arrange
    account = paper_account()
    btc = instrument("BTC-USD")
    sent = accepted_order(account, btc)
    Order.objects.filter(pk=sent.pk).update(submitted_at=timezone.now())
    stuck = accepted_order(account, btc)
    Order.objects.filter(pk=stuck.pk).update(status="initialized")
    now = timezone.now()
    for ids in ([sent.client_order_id], [stuck.client_order_id], []):
        decision_record(
            bar_ts=now, account="paper", instrument="BTC-USD", strategy="s", strategy_params={},
            inputs={}, signal="buy", mode="normal", checks=[], action="buy", order_ids=ids,
        )  # fmt: skip
    # Act
    item = by_key(checklist_items(kind="post", now=timezone.now()))["orders_vs_signals"]
    # Assert
    assert item["status"] == "fail"
    assert f"order {stuck.client_order_id} never reached the broker (initialized)" in item["detail"]
    assert "BTC-USD buy: no order" in item["detail"]
    assert sent.client_order_id not in item["detail"]


def test_post_market_when_day_normal_then_pnl_backup_reconciliation_incidents():
    # Arrange
    account = paper_account()
    now = timezone.now()
    for equity in ("10000", "10150.50"):
        EquitySnapshot.objects.create(
            account=account, ts=now, equity=Decimal(equity), cash=Decimal(equity),
            realized_pnl=0, unrealized_pnl=0, fees=0, drawdown=0,
        )  # fmt: skip
    MaintenanceRun.objects.create(task="backup", started_at=now, finished_at=now, outcome="ok")
    run = reconcile_account(account=account, trigger="schedule")
    # Act
    items = by_key(checklist_items(kind="post", now=timezone.now()))
    # Assert
    assert items["daily_pnl"]["status"] == "ok"
    assert items["daily_pnl"]["detail"] == "paper +150.50 USD (+1.51 %)"
    assert items["reconciliation"]["status"] == "ok"
    assert f"last run #{run.pk} (schedule)" in items["reconciliation"]["detail"]
    assert items["backup"]["status"] == "ok"
    assert items["incidents"]["status"] == "ok"
    assert items["orders_vs_signals"]["status"] == "ok"


def test_post_market_when_reconciliation_never_ran_or_found_discrepancies_then_fails():
    account = paper_account()
    item = by_key(checklist_items(kind="post", now=timezone.now()))["reconciliation"]
    assert item["status"] == "fail"
    assert "no reconciliation has run" in item["detail"]
    run = reconcile_account(account=account, trigger="schedule")
    Discrepancy.objects.create(
        account=account, kind="cash", key="cash:USD", ours="1", broker="2", detail="cash",
        first_seen_at=run.started_at, last_seen_at=run.started_at, first_run=run, last_run=run,
    )  # fmt: skip
    item = by_key(checklist_items(kind="post", now=timezone.now()))["reconciliation"]
    assert item["status"] == "fail"
    assert "1 open discrepancies" in item["detail"]


def test_post_market_when_no_backup_then_backup_item_fails():
    item = by_key(checklist_items(kind="post", now=timezone.now()))["backup"]
    assert item["status"] == "fail"


# --- storing, ticking, page -----------------------------------------------------------------


def test_tick_when_manual_item_then_done_and_audited(staff_user):
    run = checklist_run(kind="pre", actor="test", notify=False)
    checklist_item_tick(run_id=run.pk, key="economic_calendar", actor="user:ops", note="FOMC 20:00")
    run.refresh_from_db()
    item = by_key(run.items)["economic_calendar"]
    assert (item["status"], item["ticked_by"], item["detail"]) == ("done", "user:ops", "FOMC 20:00")
    assert AuditEvent.objects.filter(action="checklist.tick", actor="user:ops").exists()


def test_tick_when_automatic_item_then_refused():
    from apps.ops.exceptions import OpsError

    run = checklist_run(kind="pre", actor="test", notify=False)
    with pytest.raises(OpsError, match="checked by the system"):
        checklist_item_tick(run_id=run.pk, key="mode", actor="user:ops")


def test_checklist_page_when_ticked_by_post_with_csrf_then_done(staff_user):
    # Arrange
    run = checklist_run(kind="pre", actor="test", notify=False)
    client = Client(enforce_csrf_checks=True)
    otp_login(client, staff_user)
    page = client.get(f"/ops/checklists/{run.pk}/")
    assert page.status_code == 200
    assert b'data-item="economic_calendar"' in page.content
    token = (
        page.cookies["csrftoken"].value
        if "csrftoken" in page.cookies
        else client.cookies["csrftoken"].value
    )
    url = f"/ops/checklists/{run.pk}/items/economic_calendar/tick"
    # Act: without the token refused, with it ticked
    assert client.post(url, {"note": "x"}).status_code == 403
    response = client.post(url, {"note": "no events", "csrfmiddlewaretoken": token})
    # Assert
    assert response.status_code == 302
    run.refresh_from_db()
    assert by_key(run.items)["economic_calendar"]["status"] == "done"
    assert AuditEvent.objects.get(action="checklist.tick").actor == f"user:{staff_user.username}"


def test_checklist_page_when_anonymous_then_login():
    assert Client().get("/ops/checklists/").status_code == 302


# --- Telegram (through apps.notifications) -----------------------------------------------------


@pytest.fixture
def bot_api(settings):
    from tests.notifications.conftest import rate_counters_clear

    rate_counters_clear()
    with bot_api_server() as (url, state):
        settings.TELEGRAM_BOT_TOKEN = TOKEN
        settings.TELEGRAM_CHAT_ID = "-100123"
        settings.TELEGRAM_API_URL = url
        settings.NOTIFY_EMAIL_RECIPIENTS = []
        yield state


@pytest.fixture
def eager():
    from tradebot.celery import app

    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = old


def test_checklist_when_telegram_configured_then_sent_through_the_bot_api(
    bot_api, eager, django_capture_on_commit_callbacks
):
    # Act: items fail (no feed, no broker here): sent all the same, then exit 1
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(CommandError, match="checklist item"),
    ):
        call_command("checklist", "--kind", "pre", stdout=open("/dev/null", "w"))  # noqa: SIM115
    # Assert
    run = ChecklistRun.objects.get()
    notification = Notification.objects.get(code="checklist.pre")
    assert notification.data["checklist"] == run.pk
    assert dict(notification.deliveries.values_list("channel", "status"))["telegram"] == "sent"
    (message,) = bot_api.wait_sent(1)
    assert str(message["chat_id"]) == "-100123"
    # No feed and no broker in this test database: items fail, so the severity is error.
    assert message["text"].startswith("[ERROR] Tradebot pre-market checklist")
    assert "☐ Economic calendar (risk events)" in message["text"]


def test_checklist_when_telegram_refuses_then_delivery_stored_with_the_error(
    bot_api, eager, django_capture_on_commit_callbacks
):
    bot_api.fail_status = 400
    with django_capture_on_commit_callbacks(execute=True):
        run = checklist_run(kind="post", actor="test")
    delivery = Delivery.objects.get(
        notification__dedup_key=f"checklist:{run.pk}", channel="telegram"
    )
    assert delivery.status == "failed"
    assert "chat not found" in delivery.last_error.lower()
    assert ChecklistRun.objects.filter(pk=run.pk).exists()


def test_checklist_when_telegram_not_configured_then_delivery_skipped(settings):
    settings.TELEGRAM_BOT_TOKEN = ""
    run = checklist_run(kind="pre", actor="test")
    delivery = Delivery.objects.get(
        notification__dedup_key=f"checklist:{run.pk}", channel="telegram"
    )
    assert delivery.status == "skipped"
    assert "set TELEGRAM_BOT_TOKEN" in delivery.last_error


def test_checklist_when_no_notify_then_no_notification(settings):
    run = checklist_run(kind="pre", actor="test", notify=False)
    assert not Notification.objects.filter(dedup_key=f"checklist:{run.pk}").exists()


def test_checklist_task_when_run_eagerly_then_recorded(settings):
    from apps.ops.tasks import checklist

    settings.TELEGRAM_BOT_TOKEN = ""
    pk = checklist.apply(kwargs={"kind": "post"}).get()
    assert ChecklistRun.objects.get(pk=pk).kind == "post"
    assert MaintenanceRun.objects.get(task="checklist_post").outcome == "ok"


def test_checklist_command_when_items_fail_then_exit_1_naming_them():
    """A script (cron, the deploy) must see a failed checklist: exit 1, not 0."""
    system_mode_set(mode=SystemMode.PAUSE, actor="test", source="cli", reason="t")
    FeedStatus.objects.create(feed="replay", last_update=timezone.now() - timedelta(hours=2))
    out = io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("checklist", "--kind", "pre", "--no-notify", stdout=out)

    run = ChecklistRun.objects.get()
    assert str(raised.value).startswith(
        "2 checklist item(s) failed: System in NORMAL mode; Data feed active"
    )
    assert f"/ops/checklists/{run.pk}/" in str(raised.value)
    assert "❌" in out.getvalue()  # the checklist itself is printed first


def test_checklist_command_when_only_manual_items_left_then_exit_0():
    FeedStatus.objects.create(feed="replay", last_update=timezone.now())
    out = io.StringIO()

    call_command("checklist", "--kind", "pre", "--no-notify", stdout=out)

    items = ChecklistRun.objects.get().items
    assert {i["status"] for i in items} <= {"ok", "warn", "todo"}, out.getvalue()
    assert any(i["status"] == "todo" for i in items)


def test_trading_day_start_when_before_boundary_then_previous_day(settings):
    from apps.ops.checklists import trading_day_start

    settings.RISK_DAY_BOUNDARY_UTC = "22:00"
    assert trading_day_start(datetime(2026, 3, 10, 8, 0, tzinfo=UTC)) == datetime(
        2026, 3, 9, 22, 0, tzinfo=UTC
    )
