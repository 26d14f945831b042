"""Trading plans in the admin: the model's validation on the form (nothing saved on an
error), saves through the audited services with the admin user as actor, no delete."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.engine.models import TradingPlan
from apps.engine.services import plan_create
from apps.marketdata.models import Instrument
from tests.conftest import otp_login
from tests.engine.test_plans import _account

pytestmark = pytest.mark.django_db

ADD = "/admin/engine/tradingplan/add/"


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="root", password="pw-x-1")
    otp_login(client, user)
    return client


@pytest.fixture
def paper():
    return _account()


@pytest.fixture
def btc():
    return Instrument.objects.create(symbol="BTC-USD", base="BTC", quote="USD")


def _form(paper, btc, **overrides):
    data = {
        "account": paper.pk,
        "venue": "paper",
        "instrument": btc.pk,
        "timeframe": "1m",
        "strategy": "sma_cross",
        "params": '{"fast": "10", "slow": "30"}',
        "stake": "1000",
        "active": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_add_when_valid_then_created_through_the_service_audited_as_the_admin(
    admin_client, paper, btc
):
    # Act
    response = admin_client.post(ADD, _form(paper, btc))

    # Assert
    assert response.status_code == 302, response.content.decode()[:3000]
    plan = TradingPlan.objects.get()
    assert (plan.strategy, plan.params, plan.stake, plan.active) == (
        "sma_cross",
        {"fast": "10", "slow": "30"},
        Decimal(1000),
        True,
    )
    event = AuditEvent.objects.get(action="plan.create")
    assert (event.actor, event.target) == ("user:root", f"plan:{plan.pk}")


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"strategy": "moon"}, "strategy", "unknown strategy"),
        ({"params": '{"fast": "10"}'}, "params", "needs parameter"),
        ({"params": "{not json"}, "params", "valid JSON"),
        ({"timeframe": "7m"}, "timeframe", "valid choice"),
        ({"venue": "nyse"}, "venue", "valid choice"),
        ({"instrument": "999999"}, "instrument", "valid choice"),
        ({"stake": "0"}, "stake", "greater than 0"),
        ({"stake": "abc"}, "stake", "number"),
    ],
)
def test_admin_add_when_a_field_is_bad_then_form_error_on_it_and_nothing_saved(
    admin_client, paper, btc, overrides, field, words
):
    # Act
    response = admin_client.post(ADD, _form(paper, btc, **overrides))

    # Assert
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert not TradingPlan.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="plan.").exists()


def test_admin_add_when_a_kraken_account_on_paper_venue_then_venue_error(admin_client, btc):
    # Arrange
    kraken = _account(name="live", broker="kraken")

    # Act
    response = admin_client.post(ADD, _form(kraken, btc))

    # Assert
    assert "trades at kraken" in " ".join(response.context["adminform"].form.errors["venue"])
    assert not TradingPlan.objects.exists()


def test_admin_add_when_duplicate_then_error_and_nothing_saved(admin_client, paper, btc):
    # Arrange
    plan_create(
        account=paper,
        venue="paper",
        instrument=btc,
        timeframe="1m",
        strategy="sma_cross",
        params={"fast": "10", "slow": "30"},
        stake="1",
        actor="user:x",
    )

    # Act
    response = admin_client.post(ADD, _form(paper, btc, params='{"fast": "3", "slow": "9"}'))

    # Assert
    assert response.status_code == 200
    assert "already has a plan" in response.content.decode()
    assert TradingPlan.objects.count() == 1


def test_admin_change_when_edited_then_updated_and_audited_with_old_and_new(
    admin_client, paper, btc
):
    # Arrange
    admin_client.post(ADD, _form(paper, btc))
    plan = TradingPlan.objects.get()

    # Act: a new stake, and unticked "active"
    response = admin_client.post(
        f"/admin/engine/tradingplan/{plan.pk}/change/",
        _form(paper, btc, stake="250", active=None),
    )

    # Assert
    assert response.status_code == 302, response.content.decode()[:3000]
    plan.refresh_from_db()
    assert (plan.stake, plan.active) == (Decimal(250), False)
    event = AuditEvent.objects.get(action="plan.update")
    assert event.actor == "user:root"
    assert event.data["changed"] == {
        "stake": {"old": "1000", "new": "250"},
        "active": {"old": True, "new": False},
    }


def test_admin_change_when_bad_params_then_error_and_plan_unchanged(admin_client, paper, btc):
    # Arrange
    admin_client.post(ADD, _form(paper, btc))
    plan = TradingPlan.objects.get()

    # Act
    response = admin_client.post(
        f"/admin/engine/tradingplan/{plan.pk}/change/",
        _form(paper, btc, params='{"fast": "ten", "slow": "30"}'),
    )

    # Assert
    assert response.status_code == 200
    assert "must be an integer" in " ".join(response.context["adminform"].form.errors["params"])
    assert TradingPlan.objects.get().params == {"fast": "10", "slow": "30"}
    assert not AuditEvent.objects.filter(action="plan.update").exists()


def test_admin_actions_deactivate_audited_and_delete_not_offered(admin_client, paper, btc):
    # Arrange
    admin_client.post(ADD, _form(paper, btc))
    plan = TradingPlan.objects.get()

    # Act
    response = admin_client.post(
        "/admin/engine/tradingplan/",
        {"action": "deactivate", "_selected_action": [plan.pk]},
    )
    delete = admin_client.get(f"/admin/engine/tradingplan/{plan.pk}/delete/")

    # Assert
    assert response.status_code == 302
    assert TradingPlan.objects.get().active is False
    assert AuditEvent.objects.get(action="plan.deactivate").actor == "user:root"
    assert delete.status_code == 403
