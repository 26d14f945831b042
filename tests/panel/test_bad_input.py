"""Odd input on the panel's JSON API and forms (issue 13, "Bad input" and hole 3).

Text PostgreSQL cannot store (a NUL character, a lone surrogate), 10 MB bodies, deeply
nested JSON and non-finite numbers: a 4xx naming the field, nothing changed, the attempt
audited; never a 500. The kill switch is the exception: it engages whatever its reason
holds, stores the reason cleaned, and says so.
"""

from __future__ import annotations

import json

import pytest

from apps.audit.models import AuditEvent
from apps.engine.models import TradingPlan
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident, ModeChange, RiskLimit
from apps.risk.services.modes import system_mode_get
from tests.panel.factories import trading_history_create

pytestmark = pytest.mark.django_db

NUL = b'"a\\u0000b"'  # JSON for "a", NUL, "b"
SURROGATE = b'"a\\ud800b"'  # JSON for "a", a lone high surrogate, "b"
REPLACED = "a\ufffdb"


def _post(client, url, body: bytes | dict):
    data = body if isinstance(body, bytes) else json.dumps(body)
    client.raise_request_exception = False  # a 500 must show as a 500, not as an exception
    return client.post(url, data, content_type="application/json")


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# --- the kill switch engages whatever the body holds ---------------------------------------


@pytest.mark.parametrize(
    ("reason_json", "stored", "cleaned"),
    [
        (NUL, REPLACED, "NUL"),
        (SURROGATE, REPLACED, "surrogate"),
        (b'"\\u0000"', "\ufffd", "NUL"),
    ],
    ids=["nul", "lone-surrogate", "only-nul"],
)
def test_kill_api_when_reason_has_unstorable_text_then_engaged_with_cleaned_reason_and_said_so(
    verified_client, reason_json, stored, cleaned
):
    # Arrange
    trading_history_create(points=3)

    # Act
    response = _post(
        verified_client, "/api/kill", b'{"reason": ' + reason_json + b', "confirm": true}'
    )

    # Assert
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["mode"] == "kill"
    assert body["reason"] == stored
    assert any(cleaned in change for change in body["reason_cleaned"])
    assert system_mode_get() is SystemMode.KILL
    change = ModeChange.objects.get(to_mode="kill")
    assert change.reason == stored
    latched = AuditEvent.objects.get(action="mode.set", target="kill")
    assert latched.data["reason"] == stored
    assert any(cleaned in c for c in latched.data["reason_cleaned"])
    engaged = AuditEvent.objects.get(action="kill.engaged")
    assert engaged.data["reason_cleaned"] == body["reason_cleaned"]
    assert Incident.objects.get().kill_report["reason_cleaned"] == body["reason_cleaned"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"reason": "x", "confirm": true, "junk": ' + _deep(50_000) + b"}",
        b'{"junk": ' + _deep(50_000) + b', "reason": "x", "confirm": true}',
        b'{"reason": "x", "confirm": true, "n": NaN, "m": -Infinity, "f": 1e400}',
        b'{"reason": "x", "confirm": true, "z": "' + b"y" * (10 * 1024 * 1024) + b'"}',
        b'{"reason": "x' + b"y" * (10 * 1024 * 1024) + b'", "confirm": true}',
    ],
    ids=["deep-junk-after", "deep-junk-before", "non-finite", "10mb-body", "10mb-reason"],
)
def test_kill_api_when_body_is_odd_besides_reason_and_confirm_then_engaged(verified_client, body):
    # Arrange
    trading_history_create(points=3)

    # Act
    response = _post(verified_client, "/api/kill", body)

    # Assert
    assert response.status_code == 200, response.content[:300]
    assert system_mode_get() is SystemMode.KILL
    reason = ModeChange.objects.get(to_mode="kill").reason
    assert reason.startswith("x")
    assert len(reason) <= 2000
    assert AuditEvent.objects.filter(action="kill.engaged").count() == 1


def test_kill_form_when_reason_has_nul_then_engaged_with_cleaned_reason_and_said_so(
    verified_client,
):
    # Arrange
    trading_history_create(points=3)

    # Act
    response = verified_client.post(
        "/controls/kill/", {"reason": "fat\x00finger", "confirm": "on"}, follow=True
    )

    # Assert
    assert response.status_code == 200
    assert system_mode_get() is SystemMode.KILL
    assert ModeChange.objects.get(to_mode="kill").reason == "fat\ufffdfinger"
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "KILL engaged" in shown
    assert "NUL" in shown


# --- every other input: 4xx naming the field, nothing changed ------------------------------


@pytest.mark.parametrize(
    ("url", "body", "status", "names"),
    [
        ("/api/mode", b'{"mode": "pause", "reason": ' + NUL + b"}", 400, '"reason" contains a NUL'),
        (
            "/api/mode",
            b'{"mode": "pause", "reason": ' + SURROGATE + b"}",
            400,
            '"reason" contains a lone surrogate',
        ),
        ("/api/mode", b'{"mode": "pause", "reason": "x", "n": NaN}', 400, '"n" is not a finite'),
        ("/api/mode", b'{"mode": "pause", "reason": "x", "n": 1e400}', 400, '"n" is not a finite'),
        ("/api/mode", b'{"mode": "pause", "reason": "x", "n": ' + _deep(30) + b"}", 400, "nested"),
        ("/api/mode", _deep(30_000), 400, "nested too deeply"),
        (
            "/api/mode",
            b'{"mode": "pause", "reason": "' + b"x" * (10 * 1024 * 1024) + b'"}',
            413,
            "too large",
        ),
        ("/api/mode", b'{"mode": "pause", "reason": "x\xff"}', 400, "not UTF-8"),
        (
            "/api/limits",
            b'{"values": {"max_order_notional\\u0000": "1"}}',
            400,
            'a field name in "values" contains a NUL',
        ),
        (
            "/api/limits",
            b'{"values": {"max_order_notional": "1\\u0000"}}',
            400,
            '"values.max_order_notional" contains a NUL',
        ),
        (
            "/api/plans",
            b'{"venue": "paper", "instrument": "BTC' + SURROGATE[1:-1] + b'", "timeframe": "1m",'
            b' "strategy": "sma_cross", "stake": "10"}',
            400,
            '"instrument" contains a lone surrogate',
        ),
        (
            "/api/plans",
            b'{"venue": "paper", "instrument": "BTC-USD", "timeframe": "1m", "strategy":'
            b' "sma_cross", "stake": "10", "params": {"fast": "1\\u0000", "slow": "3"}}',
            400,
            '"params.fast" contains a NUL',
        ),
        ("/api/kill", b'{"reason": "x", "confirm": true', 400, "malformed JSON"),
        ("/api/kill", b'{"reason": ' + _deep(30_000) + b', "confirm": true}', 400, "too deeply"),
    ],
)
def test_api_when_input_is_odd_then_4xx_naming_it_nothing_changed_and_audited(
    verified_client, url, body, status, names
):
    # Arrange
    account = trading_history_create(points=3)
    plans_before = TradingPlan.objects.count()

    # Act
    response = _post(verified_client, url, body)

    # Assert
    assert response.status_code == status, response.content[:300]
    assert names in response.json()["error"]
    assert system_mode_get() is SystemMode.NORMAL
    assert not ModeChange.objects.exists()
    assert not RiskLimit.objects.filter(account=account).exists()
    assert TradingPlan.objects.count() == plans_before
    refused = AuditEvent.objects.get(action="api.refused")
    assert names in refused.data["error"]


@pytest.mark.parametrize(
    ("url", "data", "names"),
    [
        ("/controls/mode/", {"mode": "pause", "reason": "a\x00b"}, "reason"),
        ("/controls/limits/", {"max_order_notional": "1\x00"}, "max_order_notional"),
        ("/incidents/{incident}/report/", {"what_happened": "a\x00"}, "what_happened"),
    ],
)
def test_form_when_text_has_nul_then_refused_naming_the_field_nothing_changed(
    verified_client, url, data, names
):
    # Arrange
    account = trading_history_create(points=3)
    incident = Incident.objects.create(title="KILL: test", opened_by="user:operator")
    data = {"account_id": str(account.id), **data}

    # Act
    response = verified_client.post(url.format(incident=incident.pk), data, follow=True)

    # Assert
    assert response.status_code == 200
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "refused" in shown
    assert f"{names}: Null characters are not allowed" in shown
    assert system_mode_get() is SystemMode.NORMAL
    assert not RiskLimit.objects.filter(account=account).exists()
    incident.refresh_from_db()
    assert incident.what_happened == ""
    assert AuditEvent.objects.filter(action="panel.refused").count() == 1


def test_plan_form_when_venue_has_nul_then_400_on_the_field_nothing_saved(verified_client):
    # Arrange
    trading_history_create(points=3)
    before = TradingPlan.objects.count()

    # Act
    response = verified_client.post(
        "/plans/",
        {
            "venue": "paper\x00",
            "instrument": "BTC-USD",
            "timeframe": "1m",
            "strategy": "sma_cross",
            "params": '{"fast": "10", "slow": "30"}',
            "stake": "10",
        },
    )

    # Assert
    assert response.status_code == 400
    assert "venue" in response.context["form"].errors
    assert TradingPlan.objects.count() == before
    assert AuditEvent.objects.filter(action="panel.refused").count() == 1


# --- bad values (hole 8): 400/404 with a message, nothing written ---------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e-30", "max_order_notional=1e-30 has too many decimal places: at most 12"),
        ("1000.0000000000001", "too many decimal places"),
    ],
)
def test_limits_api_when_too_many_decimals_then_400_naming_the_field_and_unchanged(
    verified_client, value, message
):
    # Arrange
    account = trading_history_create(points=3)

    # Act
    response = _post(verified_client, "/api/limits", {"values": {"max_order_notional": value}})

    # Assert
    assert response.status_code == 400, response.content[:300]
    assert message in response.json()["error"]
    assert not RiskLimit.objects.filter(account=account).exists()
    assert AuditEvent.objects.filter(action="risk_limit.refused").count() == 1
    assert not AuditEvent.objects.filter(action="risk_limit.set").exists()


def test_limits_form_when_too_many_decimals_then_refused_with_the_message_and_unchanged(
    verified_client,
):
    # Arrange
    account = trading_history_create(points=3)

    # Act
    response = verified_client.post(
        "/controls/limits/",
        {"account_id": str(account.id), "price_collar_pct": "0.0000001"},
        follow=True,
    )

    # Assert
    assert response.status_code == 200
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "price_collar_pct=0.0000001 has too many decimal places: at most 6" in shown
    assert not RiskLimit.objects.filter(account=account).exists()


def test_discrepancy_resolve_when_it_does_not_exist_then_404_with_a_message_nothing_written(
    verified_client,
):
    # Arrange
    trading_history_create(points=3)
    before = AuditEvent.objects.exclude(action="panel.refused").count()

    # Act
    response = verified_client.post(
        "/reconciliation/discrepancies/999999/resolve/",
        {"action": "investigated", "note": "looked"},
    )

    # Assert
    assert response.status_code == 404
    assert b"discrepancy #999999 does not exist" in response.content
    assert AuditEvent.objects.exclude(action="panel.refused").count() == before
    assert AuditEvent.objects.filter(action="panel.refused").count() == 1
