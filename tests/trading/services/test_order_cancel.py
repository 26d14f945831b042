from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.trading.models import PaperOrder
from apps.trading.services.cancel import OrderCancelRefused, order_cancel
from tests.trading.factories import accepted_order, instrument, paper_account

pytestmark = pytest.mark.django_db


def test_cancel_of_a_sent_paper_order_cancels_it_at_the_paper_broker_and_audits() -> None:
    order = accepted_order(paper_account(), instrument())

    cancelled = order_cancel(order_id=order.pk, actor="mcp:bot", reason="changed my mind")

    assert cancelled.status == "canceled"
    assert PaperOrder.objects.get(client_order_id=order.client_order_id).status == "canceled"
    event = AuditEvent.objects.get(action="order.cancel")
    assert event.actor == "mcp:bot"
    assert event.target == order.client_order_id


def test_cancel_of_an_order_that_is_not_open_is_refused_and_changes_nothing() -> None:
    order = accepted_order(paper_account(), instrument())
    order_cancel(order_id=order.pk, actor="ops", reason="first")

    with pytest.raises(OrderCancelRefused, match="not open"):
        order_cancel(order_id=order.pk, actor="ops", reason="second")

    assert AuditEvent.objects.filter(action="order.cancel").count() == 1
