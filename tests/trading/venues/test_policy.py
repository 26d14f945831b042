import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.trading.venues.policy import broker_refusal

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("environment", "kwargs", "refused_with"),
    [
        ("dev", {"broker": "paper"}, None),
        ("dev", {"broker": "kraken", "kraken_api_url": "http://127.0.0.1:9"}, "dev never talks"),
        ("dev", {"broker": "ibkr", "ibkr_host": "127.0.0.1"}, "dev never talks"),
        ("test", {"broker": "kraken", "kraken_api_url": "http://127.0.0.1:9"}, None),
        ("test", {"broker": "kraken", "kraken_api_url": "https://api.kraken.com"}, "loopback"),
        ("test", {"broker": "ibkr", "ibkr_host": "10.0.0.5"}, "loopback"),
        ("staging", {"broker": "kraken"}, "no paper account"),
        ("staging", {"broker": "ibkr", "ibkr_account": "U1234567"}, "paper account id"),
        ("staging", {"broker": "ibkr", "ibkr_account": "DU1234567"}, None),
        ("prod", {"broker": "kraken"}, None),
        ("prod", {"broker": "binance"}, "not a known broker"),
    ],
)
def test_broker_refusal_when_environment_and_broker_then_rule_applies(
    environment: str, kwargs: dict, refused_with: str | None
) -> None:
    refusal = broker_refusal(environment=environment, **kwargs)
    if refused_with is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refused_with in refusal


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRADING_BROKER": "kraken"}, "dev never talks to a real broker"),
        ({"TRADING_BROKER": "bitmex"}, "TRADING_BROKER='bitmex' is not a known broker"),
    ],
)
def test_start_up_when_broker_refused_then_one_line_and_exit_2(env: dict, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "ENVIRONMENT": "dev", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
