"""Fault injection at the broker, through the real ccxt client against the Kraken fake.

Each test asserts that nothing is lost and nothing is duplicated: one broker order per
client order id, each execution booked once, positions and cash equal to the broker's.
The faults that need a real worker process (kill -9, Redis, PostgreSQL) are in
test_faults_worker.py.
"""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.brokers.models import BrokerSession, Discrepancy, DiscrepancyStatus
from apps.brokers.services.common import session_for
from apps.brokers.services.connectivity import broker_sync
from apps.brokers.services.reconcile import reconcile_account
from apps.brokers.services.settling import fills_sync
from apps.notifications.models import Alert
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident
from apps.risk.services.modes import system_mode_get
from apps.strategies.domain.base import SignalAction
from apps.trading.models import Fill, Order, Position
from apps.trading.services import orders as services
from apps.trading.services.common import venue_for
from tests.brokers.conftest import broker_orders, kraken_account
from tests.trading.services.test_decision_make import decide

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_queue(monkeypatch):
    """Sends are made by the test itself (order_send inline), not by a worker."""
    from apps.trading import tasks

    monkeypatch.setattr(tasks.order_send, "delay", lambda **kw: None)


def _decided(price: str = "20000") -> Order:
    account, _ = kraken_account()
    order = decide(account, SignalAction.ENTER_LONG, price=price, stake="1000").order
    assert order is not None
    assert order.status == "initialized"
    return order


def _sent(kraken, price: str = "20000") -> Order:
    order = services.order_send(order_id=_decided(price).pk)
    assert order.status == "accepted"
    return order


def _assert_books_equal_broker(order: Order, kraken) -> None:
    run = reconcile_account(account=order.account, trigger="command")
    assert run.outcome == "clean", list(Discrepancy.objects.values_list("detail", flat=True))
    position = Position.objects.filter(account=order.account).first()
    assert (position.quantity if position else Decimal(0)) == kraken.balance("BTC")


def test_send_when_delivered_10_times_concurrently_then_one_broker_order(kraken_settings) -> None:
    kraken = kraken_settings
    order = _decided()
    kraken.hold_next("AddOrder", delay=0.5)  # a slow broker widens the window
    barrier = threading.Barrier(10)
    results: list[str] = []

    def deliver() -> None:
        barrier.wait()
        try:
            results.append(services.order_send(order_id=order.pk).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert kraken.add_order_calls == 1
    assert len(broker_orders(kraken, order)) == 1
    order.refresh_from_db()
    assert order.status == "accepted"
    assert order.broker_order_id == broker_orders(kraken, order)[0]["txid"]
    assert AuditEvent.objects.filter(action="order.sent", target=order.client_order_id).count() == 1
    assert len(results) == 10


def test_send_when_ack_lost_then_in_flight_until_status_query_settles_it(kraken_settings) -> None:
    kraken = kraken_settings
    order = _decided()
    kraken.disconnect_next("AddOrder", after=True)  # placed at Kraken, the answer never comes

    with pytest.raises(Exception, match="(?i)kraken|connection|network|temporar"):
        services.order_send(order_id=order.pk)

    order.refresh_from_db()
    assert order.status == "submitted"  # in flight: not resent, not forgotten
    assert services.order_send(order_id=order.pk).status == "submitted"  # a retry sends nothing
    run = reconcile_account(account=order.account, trigger="command")

    order.refresh_from_db()
    assert kraken.add_order_calls == 1
    assert (order.status, order.broker_order_id) == (
        "accepted",
        broker_orders(kraken, order)[0]["txid"],
    )
    assert run.orders_settled == 1
    assert run.outcome == "clean"


def test_send_when_broker_never_received_it_then_cancelled_not_resent(kraken_settings) -> None:
    kraken = kraken_settings
    order = _decided()
    kraken.disconnect_next("AddOrder")  # connection dropped before Kraken saw it

    with pytest.raises(Exception, match="(?i)kraken|connection|network|temporar"):
        services.order_send(order_id=order.pk)
    reconcile_account(account=order.account, trigger="command")

    order.refresh_from_db()
    assert order.status == "canceled"
    assert "never reached the broker" in order.status_reason
    assert kraken.add_order_calls == 1  # the one attempt; nothing sent again
    assert broker_orders(kraken, order) == []


def test_fill_when_reported_before_the_ack_then_booked_once_and_ack_recorded(
    kraken_settings, settings
) -> None:
    kraken = kraken_settings
    settings.KRAKEN_TIMEOUT_SECONDS = 20.0
    order = _decided()
    hold = kraken.hold_next("AddOrder")  # Kraken has the order; our ack is held back
    sender = threading.Thread(
        target=lambda: (services.order_send(order_id=order.pk), connection.close())
    )
    sender.start()
    deadline = timezone.now() + timedelta(seconds=10)
    while not broker_orders(kraken, order) and timezone.now() < deadline:
        pass
    [placed] = broker_orders(kraken, order)
    kraken.fill(placed["txid"], price="20000")

    # The execution reaches us first: another process (the reconcile command, the panel)
    # re-requests the fills while the sender still waits for its ack.
    control = venue_for(order.account, purpose="control")
    applied = fills_sync(order.account, control, session_for(order.account))
    order.refresh_from_db()
    assert applied.fills_applied == 1
    assert order.status == "filled"
    assert order.broker_order_id is None  # still no ack

    hold.release()
    sender.join(15)
    order.refresh_from_db()
    assert order.status == "filled"
    assert order.broker_order_id == placed["txid"]
    assert Fill.objects.filter(order=order).count() == 1
    _assert_books_equal_broker(order, kraken)


def test_fill_when_reported_twice_then_booked_once(kraken_settings) -> None:
    kraken = kraken_settings
    order = _sent(kraken)
    kraken.fill(order.broker_order_id, price="20000")

    broker_sync(account=order.account)
    broker_sync(account=order.account)  # the overlap window re-requests the same trades
    reconcile_account(account=order.account, trigger="command")  # and so does reconciliation

    assert Fill.objects.filter(order=order).count() == 1
    _assert_books_equal_broker(order, kraken)


def test_fill_when_broker_disconnects_during_it_then_applied_after_reconnect(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    order = _sent(kraken)
    assert broker_sync(account=order.account).state == "connected"
    kraken.fill(order.broker_order_id, quantity=order.quantity / 2, price="20000")
    kraken.disconnect_next("TradesHistory", times=3)

    down = broker_sync(account=order.account)
    assert down.state == "disconnected"
    assert Fill.objects.filter(order=order).count() == 0
    later = timezone.now() + timedelta(seconds=120)
    up = broker_sync(account=order.account, now=later)  # reconnect: re-request and reconcile
    while up.state != "connected":
        later += timedelta(seconds=120)
        up = broker_sync(account=order.account, now=later)

    order.refresh_from_db()
    assert order.status == "partially_filled"
    assert Fill.objects.filter(order=order).count() == 1
    assert order.filled_quantity == order.quantity / 2
    _assert_books_equal_broker(order, kraken)


def test_partial_fill_then_cancel_then_position_is_the_partial(kraken_settings) -> None:
    kraken = kraken_settings
    order = _sent(kraken)
    part = (order.quantity / 4).quantize(Decimal("1e-8"))
    kraken.fill(order.broker_order_id, quantity=part, price="20000")
    kraken.cancel_behind_back(order.broker_order_id)

    reconcile_account(account=order.account, trigger="command")

    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("canceled", part)
    assert Position.objects.get(account=order.account).quantity == part
    _assert_books_equal_broker(order, kraken)


def _assert_paused_and_recorded(run, kind: str) -> Discrepancy:
    assert run.outcome == "discrepancies"
    row = Discrepancy.objects.get(kind=kind, status=DiscrepancyStatus.OPEN)
    assert system_mode_get() is SystemMode.PAUSE
    assert Alert.objects.filter(
        code="reconciliation_discrepancy", resolved_at__isnull=True
    ).exists()
    assert row.incident is not None
    assert row.incident in Incident.objects.all()
    return row


def test_reconcile_when_position_changed_behind_our_back_then_recorded_and_paused(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    order = _sent(kraken)
    kraken.fill(order.broker_order_id, price="20000")
    broker_sync(account=order.account)
    kraken.set_balance("BTC", kraken.balance("BTC") + Decimal("0.5"))  # a manual trade

    run = reconcile_account(account=order.account, trigger="command")

    row = _assert_paused_and_recorded(run, "position")
    assert (Decimal(row.broker) - Decimal(row.ours)) == Decimal("0.5")
    from apps.notifications.models import Notification

    note = Notification.objects.get(code="reconciliation.discrepancies")
    assert note.severity == "error"
    assert "BTC-USD" in note.body
    assert Notification.objects.filter(code="order.filled", severity="info").count() == 1
    assert row.instrument == "BTC-USD"


def test_reconcile_when_broker_has_an_order_we_do_not_know_then_recorded_and_paused(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    kraken_account()
    txid = kraken.add_foreign_order(pair="XBTUSD", side="sell", volume="0.01", price="90000")

    from apps.accounts.models import Account

    run = reconcile_account(account=Account.objects.get(name="kraken"), trigger="command")

    row = _assert_paused_and_recorded(run, "unknown_order")
    assert row.key == f"unknown_order:{txid}"


def test_reconcile_when_our_open_order_vanished_at_the_broker_then_recorded_and_paused(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    order = _sent(kraken)
    kraken.drop_order(order.broker_order_id)

    run = reconcile_account(account=order.account, trigger="command")

    row = _assert_paused_and_recorded(run, "missing_order")
    assert row.key == f"missing_order:{order.client_order_id}"
    order.refresh_from_db()
    assert order.status == "accepted"  # nothing guessed: a person decides (adopt -> CANCELED)


def test_disconnect_when_longer_than_grace_then_alert_pause_and_resume_after_clean_reconcile(
    kraken_settings, settings, monkeypatch
) -> None:
    settings.BROKER_DISCONNECT_ALERT_SECONDS = 120
    settings.BROKER_DISCONNECT_PAUSE_SECONDS = 300
    account, _ = kraken_account()
    broker_sync(account=account)
    t0 = timezone.now()
    from apps.trading.venues.factory import venues_reset

    with socket.socket() as s:  # the broker is unreachable: nothing listens there
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings.KRAKEN_API_URL = f"http://127.0.0.1:{dead}"
    venues_reset()

    for seconds in (0, 60, 130, 200, 310):
        session = broker_sync(account=account, now=t0 + timedelta(seconds=seconds))
        if seconds < 120:
            assert not Alert.objects.filter(code__startswith="broker_disconnected").exists()
    session = BrokerSession.objects.get(account=account)
    assert session.state == "disconnected"
    assert session.alerted
    assert Alert.objects.get(code="broker_disconnected:kraken").severity == "critical"
    from apps.notifications.models import Notification

    assert Notification.objects.get(code="broker.disconnected").severity == "critical"
    assert system_mode_get() is SystemMode.PAUSE

    settings.KRAKEN_API_URL = kraken_settings.url  # the network is back
    venues_reset()
    later = t0 + timedelta(seconds=400)
    while BrokerSession.objects.get(account=account).state != "connected":
        broker_sync(account=account, now=later)
        later += timedelta(seconds=120)

    assert system_mode_get() is SystemMode.NORMAL
    assert account.reconciliation_runs.filter(trigger="reconnect", outcome="clean").exists()
    assert not Alert.objects.filter(
        code="broker_disconnected:kraken", resolved_at__isnull=True
    ).exists()


def test_incident_page_when_opened_by_reconciliation_then_lists_its_discrepancies(
    kraken_settings, staff_user
) -> None:
    from django.test import Client

    from tests.conftest import otp_login

    kraken = kraken_settings
    order = _sent(kraken)
    kraken.drop_order(order.broker_order_id)
    reconcile_account(account=order.account, trigger="command")
    incident = Incident.objects.get(opened_by="reconciliation")
    client = Client()
    otp_login(client, staff_user)

    page = client.get(f"/incidents/{incident.pk}/")

    assert page.status_code == 200
    assert b'id="incident-discrepancies"' in page.content
    assert order.client_order_id.encode() in page.content
