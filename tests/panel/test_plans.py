"""The panel's trading plans page and JSON endpoints: 2FA staff only, create / edit /
(de)activate through the audited services; bad input is a form error, nothing saved."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.engine.models import TradingPlan
from apps.engine.selectors import plans_active, plans_version
from apps.engine.services import plan_create
from apps.marketdata.models import Instrument
from tests.engine.test_plans import _account
from tests.panel.conftest import otp_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def paper():
    return _account()


@pytest.fixture
def btc():
    return Instrument.objects.create(symbol="BTC-USD", base="BTC", quote="USD")


@pytest.fixture
def plan(paper, btc):
    return plan_create(
        account=paper,
        venue="paper",
        instrument=btc,
        timeframe="1m",
        strategy="sma_cross",
        params={"fast": "10", "slow": "30"},
        stake="1000",
        actor="cli:seed",
    )


def _form(paper, btc, **overrides):
    data = {
        "account": paper.pk,
        "venue": "paper",
        "instrument": btc.pk,
        "timeframe": "5m",
        "strategy": "sma_cross",
        "params": '{"fast": "5", "slow": "20"}',
        "stake": "250",
        "active": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_page_when_not_verified_then_no_plans_shown(operator, plan):
    # Arrange: password only, no second factor
    client = Client()
    otp_login(client, operator, verified=False)

    # Act
    response = client.get(reverse("panel:plans"))

    # Assert
    assert response.status_code in (302, 403)
    assert b"BTC-USD" not in response.content


def test_page_lists_plans_with_their_state_and_a_create_form(verified_client, plan):
    # Act
    response = verified_client.get(reverse("panel:plans"))

    # Assert
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="plan-{plan.pk}"' in html
    assert "fast=10, slow=30" in html
    assert "Deactivate" in html
    assert 'id="plan-form"' in html
    assert '<option value="ml">ml</option>' in html  # the registered strategies
    assert plans_version() in html


def test_create_when_valid_then_saved_audited_as_the_panel_user(verified_client, paper, btc):
    # Act
    response = verified_client.post(reverse("panel:plans"), _form(paper, btc))

    # Assert
    assert response.status_code == 302
    plan = TradingPlan.objects.get()
    assert (plan.timeframe, plan.params, plan.stake) == (
        "5m",
        {"fast": "5", "slow": "20"},
        Decimal(250),
    )
    assert AuditEvent.objects.get(action="plan.create").actor == "user:operator"
    assert any("created" in m for m in _messages(response))


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"strategy": "moon"}, "strategy", "unknown strategy"),
        ({"params": '{"fast": "5"}'}, "params", "needs parameter"),
        ({"params": "[1, 2]"}, "params", "JSON object"),
        ({"timeframe": "2m"}, "timeframe", "valid choice"),
        ({"venue": "binance"}, "venue", "valid choice"),
        ({"instrument": "424242"}, "instrument", "valid choice"),
        ({"stake": "-1"}, "stake", "greater than 0"),
    ],
)
def test_create_when_a_field_is_bad_then_form_error_on_it_and_nothing_saved(
    verified_client, paper, btc, overrides, field, words
):
    # Act
    response = verified_client.post(reverse("panel:plans"), _form(paper, btc, **overrides))

    # Assert
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert f'id="error-{field}"' in response.content.decode()
    assert not TradingPlan.objects.exists()
    refused = AuditEvent.objects.get(action="panel.refused")
    assert (refused.actor, refused.target) == ("user:operator", "plan create")


def test_edit_page_when_saved_then_updated_and_audited(verified_client, plan, paper, btc):
    # Arrange
    url = reverse("panel:plan_edit", args=[plan.pk])
    assert verified_client.get(url).status_code == 200

    # Act
    response = verified_client.post(
        url, _form(paper, btc, timeframe="1m", params='{"fast": "3", "slow": "9"}')
    )

    # Assert
    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.params, plan.stake) == ({"fast": "3", "slow": "9"}, Decimal(250))
    event = AuditEvent.objects.get(action="plan.update")
    assert event.actor == "user:operator"
    assert set(event.data["changed"]) == {"params", "stake"}


def test_edit_when_bad_params_then_form_error_and_plan_unchanged(verified_client, plan, paper, btc):
    # Arrange
    before = plans_version()

    # Act
    response = verified_client.post(
        reverse("panel:plan_edit", args=[plan.pk]),
        _form(paper, btc, timeframe="1m", params='{"fast": "x", "slow": "9"}'),
    )

    # Assert
    assert response.status_code == 400
    assert "must be an integer" in " ".join(response.context["form"].errors["params"])
    assert plans_version() == before
    assert TradingPlan.objects.get(pk=plan.pk).params == {"fast": "10", "slow": "30"}


def test_edit_when_account_posted_then_the_account_does_not_change(verified_client, plan, btc):
    # Arrange
    other = _account("other")

    # Act
    verified_client.post(
        reverse("panel:plan_edit", args=[plan.pk]), _form(other, btc, timeframe="1m")
    )

    # Assert
    assert TradingPlan.objects.get(pk=plan.pk).account.name == "paper"


def test_deactivate_then_activate_from_the_list_audited(verified_client, plan):
    # Arrange
    url = reverse("panel:plan_active", args=[plan.pk])

    # Act
    off = verified_client.post(url, {"active": "0"})
    after_off = plans_active()
    on = verified_client.post(url, {"active": "1"})

    # Assert
    assert (off.status_code, on.status_code) == (302, 302)
    assert after_off == []
    assert [p.id for p in plans_active()] == [plan.pk]
    actions = list(
        AuditEvent.objects.filter(actor="user:operator")
        .exclude(action__startswith="auth.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["plan.deactivate", "plan.activate"]


def test_active_when_value_is_not_0_or_1_then_refused_and_unchanged(verified_client, plan):
    # Act
    response = verified_client.post(
        reverse("panel:plan_active", args=[plan.pk]), {"active": "maybe"}
    )

    # Assert
    assert any("active must be 1" in m for m in _messages(response))
    assert TradingPlan.objects.get(pk=plan.pk).active is True
    assert AuditEvent.objects.filter(action="panel.refused").exists()


def test_active_when_csrf_missing_then_forbidden_and_unchanged(csrf_client, plan):
    # Act
    response = csrf_client.post(reverse("panel:plan_active", args=[plan.pk]), {"active": "0"})

    # Assert
    assert response.status_code == 403
    assert TradingPlan.objects.get(pk=plan.pk).active is True


# --- JSON endpoints ---------------------------------------------------------------------


def _post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_api_list_returns_version_and_plans(verified_client, plan):
    # Act
    data = verified_client.get("/api/plans").json()

    # Assert
    assert data["version"] == plans_version()
    assert [(p["id"], p["instrument"], p["params"], p["stake"]) for p in data["plans"]] == [
        (plan.pk, "BTC-USD", {"fast": "10", "slow": "30"}, "1000")
    ]


def test_api_create_then_201_on_the_engine_account_by_default(
    verified_client, paper, btc, settings
):
    # Arrange
    settings.ENGINE_ACCOUNT = "paper"

    # Act
    response = _post(
        verified_client,
        "/api/plans",
        {
            "venue": "paper",
            "instrument": "btc-usd",
            "timeframe": "1h",
            "strategy": "ml",
            "params": {"threshold": 0.6},
            "stake": "100",
        },
    )

    # Assert
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["account"], body["strategy"], body["params"]) == (
        "paper",
        "ml",
        {"threshold": "0.6"},
    )
    assert AuditEvent.objects.get(action="plan.create").actor == "user:operator"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "moon"}, "strategy"),
        ({"instrument": "NOPE-USD"}, "instrument"),
        ({"timeframe": "9m"}, "timeframe"),
        ({"venue": "ftx"}, "venue"),
        ({"params": {"fast": "1"}}, "params"),
        ({"stake": "0"}, "stake"),
        ({"account": "ghost"}, "account"),
    ],
)
def test_api_create_when_a_field_is_bad_then_400_naming_it_and_nothing_saved(
    verified_client, paper, btc, body, field
):
    # Arrange
    full = {
        "account": "paper",
        "venue": "paper",
        "instrument": "BTC-USD",
        "timeframe": "1m",
        "strategy": "sma_cross",
        "params": {"fast": "10", "slow": "30"},
        "stake": "100",
        **body,
    }

    # Act
    response = _post(verified_client, "/api/plans", full)

    # Assert
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert response.json()["error"].startswith(f"{field}: ")
    assert not TradingPlan.objects.exists()
    assert AuditEvent.objects.filter(action="api.refused").exists()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"venue": "paper"}, '"instrument" is required'),
        ({"active": "yes"}, '"active" must be true or false'),
    ],
)
def test_api_create_when_body_malformed_then_400(verified_client, paper, body, words):
    # Act
    response = _post(verified_client, "/api/plans", body)

    # Assert
    assert response.status_code == 400
    assert words in response.json()["error"]
    assert not TradingPlan.objects.exists()


def test_api_update_and_deactivate_then_audited_and_version_moves(verified_client, plan):
    # Arrange
    before = plans_version()

    # Act
    edited = _post(verified_client, f"/api/plans/{plan.pk}", {"stake": "5", "timeframe": "5m"})
    middle = plans_version()
    off = _post(verified_client, f"/api/plans/{plan.pk}", {"active": False})

    # Assert
    assert edited.status_code == 200
    assert (edited.json()["stake"], edited.json()["timeframe"]) == ("5", "5m")
    assert off.json()["active"] is False
    assert len({before, middle, plans_version()}) == 3
    assert list(
        AuditEvent.objects.filter(actor="user:operator")
        .exclude(action__startswith="auth.")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["plan.update", "plan.deactivate"]


def test_api_update_when_bad_then_400_and_unchanged(verified_client, plan):
    # Act
    bad = _post(verified_client, f"/api/plans/{plan.pk}", {"strategy": "moon"})
    missing = _post(verified_client, "/api/plans/999999", {"stake": "1"})
    account = _post(verified_client, f"/api/plans/{plan.pk}", {"account": "other"})

    # Assert
    assert bad.status_code == 400
    assert "unknown strategy 'moon'" in bad.json()["fields"]["strategy"][0]
    assert missing.status_code == 404
    assert account.status_code == 400
    assert "cannot change" in account.json()["error"]
    assert TradingPlan.objects.get(pk=plan.pk).strategy == "sma_cross"


def test_api_when_not_verified_then_401(operator, plan):
    # Arrange
    client = Client()
    otp_login(client, operator, verified=False)

    # Act
    response = _post(client, f"/api/plans/{plan.pk}", {"active": False})

    # Assert
    assert response.status_code == 401
    assert TradingPlan.objects.get(pk=plan.pk).active is True
