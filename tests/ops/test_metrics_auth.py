"""/metrics behind a bearer token, /health minimal and open (issue 13, item 9).

/metrics carries equity, P&L and exposures per instrument: only Prometheus, with the token
from its credentials file (config/prometheus/prometheus.yml), reads it. /health stays
unauthenticated for the probes and says only "ok"/"error" per dependency.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.test import Client

from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-for-tests-0123456789abcdef"  # noqa: S105


@pytest.fixture
def token(settings) -> str:
    settings.METRICS_BEARER_TOKEN = TOKEN
    return TOKEN


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
def test_metrics_when_no_or_wrong_token_then_401_and_no_numbers(token, authorization) -> None:
    system_mode_get()  # there is something to show
    headers = {"Authorization": authorization} if authorization else {}

    response = Client().get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"trading_" not in response.content
    assert b"METRICS_BEARER_TOKEN" in response.content  # what to send


def test_metrics_when_bearer_token_then_200_with_the_metrics(token) -> None:
    assert system_mode_get() is SystemMode.NORMAL

    response = Client().get("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert b"trading_system_mode" in response.content


def test_health_when_anonymous_then_minimal_and_open(token) -> None:
    response = Client().get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_prometheus_config_when_read_then_scrapes_the_app_with_the_token_file() -> None:
    config = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "trading-core")
    services = compose["services"]

    # Prometheus reads the token from the same secret file the app reads it from
    assert job["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/run/secrets/metrics_token",
    }
    assert "metrics_token" in services["prometheus"]["secrets"]
    assert "metrics_token" in services["trading-core"]["secrets"]
    assert (
        services["trading-core"]["environment"]["METRICS_BEARER_TOKEN_FILE"]
        == "/run/secrets/metrics_token"
    )
    assert compose["secrets"]["metrics_token"] == {"file": "./config/secrets/metrics-token"}
