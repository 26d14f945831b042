from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.trading.models import EquitySnapshot
from tests.panel.conftest import otp_login
from tests.panel.factories import trading_history_create

pytestmark = pytest.mark.django_db


def test_overview_when_anonymous_then_redirects_to_two_factor_login(client):
    # Act
    response = client.get(reverse("panel:overview"))

    # Assert
    assert response.status_code == 302
    assert response.url.startswith(reverse("two_factor:login"))
    assert "next=/" in response.url


def test_overview_when_logged_in_but_not_staff_then_forbidden(client, django_user_model):
    # Arrange
    otp_login(client, django_user_model.objects.create_user("viewer", password="x"))

    # Act
    response = client.get(reverse("panel:overview"))

    # Assert
    assert response.status_code == 403


def test_overview_when_staff_then_renders_snapshot_as_json_script(client, admin_user):
    # Arrange
    account = trading_history_create(points=10)
    latest = EquitySnapshot.objects.filter(account=account).order_by("-ts").first()
    otp_login(client, admin_user)

    # Act
    response = client.get(reverse("panel:overview"))

    # Assert
    assert response.status_code == 200
    html = response.content.decode()
    assert '<script id="overview-snapshot" type="application/json">' in html
    snapshot = response.context["snapshot"]
    assert snapshot["account"] == account.name
    assert snapshot["equity"]["equity"] == str(latest.equity)
    assert len(snapshot["equity_history"]) == 10
    start = html.index('id="overview-snapshot"')
    payload = html[html.index(">", start) + 1 : html.index("</script>", start)]
    assert json.loads(payload) == snapshot
    assert "/static/panel/overview.js" in html
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html
    assert "cdn" not in html.lower()


def test_overview_when_no_account_yet_then_renders_empty_page(client, admin_user):
    # Arrange
    otp_login(client, admin_user)

    # Act
    response = client.get(reverse("panel:overview"))

    # Assert
    assert response.status_code == 200
    assert response.context["snapshot"]["equity"] is None
    assert 'class="mode-banner mode-normal"' in response.content.decode()


def test_logout_is_a_post_form_with_csrf(client, admin_user):
    # Arrange
    otp_login(client, admin_user)

    # Act
    html = client.get(reverse("panel:overview")).content.decode()

    # Assert
    form = html[html.index('<form class="logout"') : html.index("</form>")]
    assert 'method="post"' in form
    assert f'action="{reverse("panel:logout")}"' in form
    assert "csrfmiddlewaretoken" in form
