"""Reconciliation, outbox and resolution on the paper broker (which keeps its own book;
tests/brokers/test_paper_book.py doctors either side and reconciles).

The live brokers' discrepancies are driven through their loopback fakes in
tests/brokers/test_faults.py; here: the start-up gate, the outbox, resolution rights,
the panel page and the metrics.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.audit.models import AuditEvent
from apps.brokers.models import (
    Discrepancy,
    DiscrepancyStatus,
    ReconciliationOutcome,
    ReconciliationRun,
)
from apps.brokers.services.common import DiscrepancyResolveRefused
from apps.brokers.services.reconcile import reconcile_account, startup_reconcile
from apps.brokers.services.resolution import discrepancy_resolve
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.models import Order, Position
from apps.trading.services.common import new_client_order_id
from apps.trading.services.outbox import orders_outbox_sweep
from tests.conftest import otp_login
from tests.trading.factories import accepted_order, instrument, paper_account


def _discrepancy(account, *, kind="position", key="position:BTC-USD", ours="1", broker="2.5"):
    run = ReconciliationRun.objects.create(
        account=account, trigger="command", actor="test", started_at=timezone.now()
    )
    now = timezone.now()
    return Discrepancy.objects.create(
        account=account,
        kind=kind,
        key=key,
        instrument="BTC-USD",
        ours=ours,
        broker=broker,
        detail="test",
        first_seen_at=now,
        last_seen_at=now,
        first_run=run,
        last_run=run,
    )


@pytest.mark.django_db
def test_startup_reconcile_when_paper_books_agree_then_observation_then_back_to_normal() -> None:
    account = paper_account()
    accepted_order(account, instrument())

    run = startup_reconcile(account=account)

    assert run.outcome == ReconciliationOutcome.CLEAN
    assert run.orders_checked == 2  # ours and the paper book's view of it
    modes = list(ModeChange.objects.order_by("id").values_list("to_mode", flat=True))
    assert modes == ["observation", "normal"]
    assert system_mode_get() is SystemMode.NORMAL


@pytest.mark.django_db
def test_startup_reconcile_when_operator_paused_then_mode_left_alone() -> None:
    account = paper_account()
    system_mode_set(mode="pause", actor="test", source="cli", reason="maintenance")

    startup_reconcile(account=account)

    assert system_mode_get() is SystemMode.PAUSE
    assert ModeChange.objects.count() == 1


@pytest.mark.django_db
def test_reconcile_when_a_discrepancy_disappears_then_it_is_cleared_not_deleted() -> None:
    account = paper_account()
    stale = _discrepancy(account)

    run = reconcile_account(account=account, trigger="command")

    stale.refresh_from_db()
    assert run.outcome == ReconciliationOutcome.CLEAN
    assert stale.status == DiscrepancyStatus.CLEARED
    assert f"run #{run.pk}" in stale.resolution_note
    assert AuditEvent.objects.filter(action="reconciliation.run", target="paper").exists()


@pytest.mark.django_db
def test_outbox_sweep_when_order_never_enqueued_then_requeued_once_and_stale_ones_denied(
    monkeypatch, settings
) -> None:
    from apps.trading import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.order_send, "delay", lambda order_id: sent.append(order_id))
    account = paper_account()
    inst = instrument()

    def initialized(age_seconds: int) -> Order:
        order = Order.objects.create(
            account=account,
            instrument=inst,
            client_order_id=new_client_order_id(),
            side="buy",
            order_type="market",
            quantity=Decimal("1"),
            status="initialized",
        )
        Order.objects.filter(pk=order.pk).update(
            created_at=timezone.now() - timedelta(seconds=age_seconds)
        )
        return order

    fresh, lost, stale = initialized(1), initialized(30), initialized(600)

    result = orders_outbox_sweep()

    assert sent == [lost.pk]  # the fresh one may still be on its way: left alone
    assert result.expired == (stale.client_order_id,)
    stale.refresh_from_db()
    assert stale.status == "denied"
    assert "stale decision is never sent" in stale.status_reason
    fresh.refresh_from_db()
    assert fresh.status == "initialized"


@pytest.mark.django_db
def test_resolve_when_not_otp_verified_or_no_note_then_refused_and_nothing_changes(
    staff_user,
) -> None:
    account = paper_account()
    row = _discrepancy(account)
    with pytest.raises(DiscrepancyResolveRefused, match="two-factor"):
        discrepancy_resolve(
            discrepancy_id=row.pk, action="adopt", note="x", user=staff_user, otp_verified=False
        )
    with pytest.raises(DiscrepancyResolveRefused, match="a note is required"):
        discrepancy_resolve(
            discrepancy_id=row.pk, action="adopt", note="  ", user=staff_user, otp_verified=True
        )
    row.refresh_from_db()
    assert row.status == DiscrepancyStatus.OPEN
    assert not Position.objects.filter(account=account).exists()


@pytest.mark.django_db
def test_resolve_when_adopting_a_position_then_ours_becomes_the_brokers_and_audited(
    staff_user,
) -> None:
    account = paper_account()
    instrument()
    row = _discrepancy(account, broker="2.5")

    discrepancy_resolve(
        discrepancy_id=row.pk,
        action="adopt",
        note="manual trade at the broker",
        user=staff_user,
        otp_verified=True,
    )

    assert Position.objects.get(account=account).quantity == Decimal("2.5")
    row.refresh_from_db()
    assert (row.status, row.resolved_by) == (DiscrepancyStatus.ADOPTED, "user:ops")
    event = AuditEvent.objects.get(action="discrepancy.adopt")
    assert event.actor == "user:ops"
    assert event.data["broker"] == "2.5"


@pytest.mark.django_db
def test_resolve_when_kind_cannot_be_adopted_then_clear_refusal(staff_user) -> None:
    account = paper_account()
    row = _discrepancy(account, kind="unknown_order", key="unknown_order:X1")
    with pytest.raises(DiscrepancyResolveRefused, match="cannot be adopted automatically"):
        discrepancy_resolve(
            discrepancy_id=row.pk, action="adopt", note="n", user=staff_user, otp_verified=True
        )
    discrepancy_resolve(
        discrepancy_id=row.pk,
        action="investigated",
        note="cancelled it by hand",
        user=staff_user,
        otp_verified=True,
    )
    row.refresh_from_db()
    assert row.status == DiscrepancyStatus.INVESTIGATED


@pytest.mark.django_db
def test_panel_when_reconcile_button_pressed_then_run_recorded_with_the_user(staff_user) -> None:
    paper_account()
    client = Client()
    otp_login(client, staff_user)

    response = client.post("/reconciliation/run/", follow=True)

    assert response.status_code == 200
    run = ReconciliationRun.objects.get()
    assert (run.trigger, run.actor, run.outcome) == ("panel", "user:ops", "clean")
    assert b"paper: clean" in response.content


@pytest.mark.django_db
def test_panel_when_resolving_through_the_page_then_audited_and_shown(staff_user) -> None:
    account = paper_account()
    instrument()
    row = _discrepancy(account, kind="cash", key="cash:USD", ours="10000", broker="9990")
    client = Client()
    otp_login(client, staff_user)

    page = client.get("/reconciliation/")
    assert page.status_code == 200
    assert b"cash:USD" not in page.content
    assert f'data-discrepancy="{row.pk}"'.encode() in page.content

    bad = client.post(
        f"/reconciliation/discrepancies/{row.pk}/resolve/", {"action": "adopt"}, follow=True
    )
    assert b"note: This field is required" in bad.content
    client.post(
        f"/reconciliation/discrepancies/{row.pk}/resolve/",
        {"action": "adopt", "note": "fee charged by the broker"},
    )
    account.refresh_from_db()
    assert account.cash == Decimal("9990")


@pytest.mark.django_db
def test_panel_when_not_verified_then_no_reconciliation_page(staff_user) -> None:
    client = Client()
    otp_login(client, staff_user, verified=False)
    assert client.get("/reconciliation/").status_code in (302, 403)
    assert client.post("/reconciliation/run/").status_code in (302, 403)
    assert not ReconciliationRun.objects.exists()


@pytest.mark.django_db
def test_metrics_when_paper_and_open_discrepancy_then_connected_and_counted() -> None:
    account = paper_account()
    _discrepancy(account)
    assert (
        REGISTRY.get_sample_value("broker_connected", {"broker": "paper", "account": "paper"}) == 1
    )
    assert REGISTRY.get_sample_value("reconciliation_discrepancies_open") == 1
