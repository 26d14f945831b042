"""Admin edits of trading-relevant data are audited with before and after (issue 13, item 5),
and a risk-limit row cannot be deleted from the admin (its account would fall back to the
ceilings)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Account
from apps.audit.models import AuditEvent
from apps.risk.models import RiskLimit
from tests.conftest import otp_login
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(django_user_model) -> Client:  # noqa: ANN001
    user = django_user_model.objects.create_superuser("boss", password="x" * 20)
    client = Client()
    otp_login(client, user)
    return client


def account_form(account: Account, **changes: str) -> dict[str, str]:
    data = {
        "name": account.name,
        "broker": account.broker,
        "currency": account.currency,
        "starting_cash": str(account.starting_cash),
    }
    data.update(changes)
    return data


def test_admin_when_broker_changed_then_audited_with_before_and_after(admin_client) -> None:
    account = paper_account()
    url = reverse("admin:accounts_account_change", args=[account.pk])

    response = admin_client.post(url, account_form(account, broker="kraken"))

    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="admin.change")
    assert event.actor == "user:boss"
    assert event.target == f"accounts.account:{account.pk}"
    assert event.data["fields"] == ["broker"]
    assert (event.data["before"]["broker"], event.data["after"]["broker"]) == ("paper", "kraken")


def test_admin_when_saved_unchanged_then_no_audit_row(admin_client) -> None:
    account = paper_account()
    url = reverse("admin:accounts_account_change", args=[account.pk])

    admin_client.post(url, account_form(account))

    assert not AuditEvent.objects.filter(action="admin.change").exists()


def test_admin_when_account_deleted_then_audited_with_its_values(admin_client) -> None:
    account = Account.objects.create(
        name="spare",
        broker="paper",
        currency="USD",
        starting_cash=Decimal(1),
        cash=Decimal(1),
        peak_equity=Decimal(1),
    )
    url = reverse("admin:accounts_account_delete", args=[account.pk])

    admin_client.post(url, {"post": "yes"})

    event = AuditEvent.objects.get(action="admin.delete")
    assert event.data["before"]["name"] == "spare"
    assert not Account.objects.filter(pk=account.pk).exists()


def test_admin_when_risk_limit_delete_attempted_then_refused_and_limits_unchanged(
    admin_client,
) -> None:
    account = paper_account(max_order="5000")
    row = RiskLimit.objects.get(account=account)

    page = admin_client.get(reverse("admin:risk_risklimit_delete", args=[row.pk]))
    posted = admin_client.post(
        reverse("admin:risk_risklimit_delete", args=[row.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        reverse("admin:risk_risklimit_changelist"),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )

    assert page.status_code == 403
    assert posted.status_code == 403
    assert bulk.status_code in (200, 302)
    assert RiskLimit.objects.get(account=account).max_order_notional == Decimal("5000")
