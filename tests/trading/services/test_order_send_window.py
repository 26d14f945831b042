"""No order reaches a broker after a KILL: not even one already marked SUBMITTED."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.strategies.domain.base import SignalAction
from apps.trading.models import Order
from apps.trading.services import orders as services
from apps.trading.services.kill_switch import kill_switch_engage
from apps.trading.venues.paper import PaperVenue
from tests.trading.factories import instrument, paper_account
from tests.trading.services.test_decision_make import decide


class RecordingVenue(PaperVenue):
    def __init__(self, account, before_submit=None, hold: float = 0.0) -> None:  # noqa: ANN001
        super().__init__(account)
        self.sent: list[str] = []
        self.before_submit = before_submit
        self.hold = hold

    def submit(self, order):  # noqa: ANN001, ANN201
        self.sent.append(order.client_order_id)
        time.sleep(self.hold)  # a slow broker round trip
        return super().submit(order)


@pytest.mark.django_db
def test_order_send_when_kill_lands_after_submitted_then_never_reaches_broker(monkeypatch) -> None:
    account = paper_account()
    instrument()
    order = decide(account, SignalAction.ENTER_LONG).order
    venue = RecordingVenue(account)
    killed = []

    def venue_after_kill(_account, **_kw):  # noqa: ANN001, ANN003, ANN202 - KILL between steps 1 and 2
        if not killed:
            killed.append(True)
            assert Order.objects.get(pk=order.pk).status == "submitted"
            kill_switch_engage(actor="test", source="cli", reason="window test")
        return venue

    monkeypatch.setattr(services, "venue_for", venue_after_kill)

    result = services.order_send(order_id=order.pk)

    assert venue.sent == []
    assert result.status == "canceled"
    assert not AuditEvent.objects.filter(action="order.sent", target=order.client_order_id).exists()


@pytest.mark.django_db(transaction=True)
def test_kill_when_send_in_progress_then_waits_for_it_and_cancels_the_order(monkeypatch) -> None:
    account = paper_account()
    instrument()
    from apps.trading.tasks import order_send as order_send_task

    monkeypatch.setattr(order_send_task, "delay", lambda **kw: None)  # send it ourselves
    order = decide(account, SignalAction.ENTER_LONG).order
    venue = RecordingVenue(account, hold=1.0)
    monkeypatch.setattr(services, "venue_for", lambda _account, **_kw: venue)
    sender = threading.Thread(
        target=lambda: (services.order_send(order_id=order.pk), connection.close())
    )

    sender.start()
    while not venue.sent:  # the send holds the mode row's share lock from here
        time.sleep(0.01)
    started = time.monotonic()
    kill_switch_engage(actor="test", source="cli", reason="kill during a send")
    waited = time.monotonic() - started
    sender.join(timeout=10)

    assert waited >= 0.5  # the KILL latch waited for the send in progress
    order.refresh_from_db()
    assert venue.sent == [order.client_order_id]
    assert order.status == "canceled"  # then the kill switch cancelled it at the broker
