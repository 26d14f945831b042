"""Which broker may be used in which environment: a pure rule, unit tested, read at start-up.

- dev never talks to a broker: only the paper simulator.
- test may use a live adapter only against a loopback endpoint (the test suite's fakes).
- staging: the paper simulator or IBKR's paper account (ids starting "DU"); never Kraken,
  which has no paper spot account.
- prod: any of them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

KNOWN_BROKERS = ("paper", "kraken", "ibkr")
LIVE_BROKERS = ("kraken", "ibkr")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def broker_refusal(
    *,
    environment: str,
    broker: str,
    kraken_api_url: str = "",
    ibkr_host: str = "",
    ibkr_account: str = "",
) -> str | None:
    """Why ``broker`` may not be used in ``environment``, or None when it may."""
    if broker not in KNOWN_BROKERS:
        return f"TRADING_BROKER={broker!r} is not a known broker: use one of {', '.join(KNOWN_BROKERS)}"
    if broker == "paper" or environment == "prod":
        return None
    if environment == "dev":
        return (
            f"TRADING_BROKER={broker} in dev: dev never talks to a real broker; "
            "use TRADING_BROKER=paper (staging may use IBKR's paper account)"
        )
    if environment == "test":
        host = urlsplit(kraken_api_url).hostname or "" if broker == "kraken" else ibkr_host
        if not _is_loopback(host):
            name = "KRAKEN_API_URL" if broker == "kraken" else "IBKR_HOST"
            return (
                f"TRADING_BROKER={broker} in test needs {name} on loopback (a fake), not {host!r}"
            )
        return None
    if environment == "staging":
        if broker == "kraken":
            return (
                "TRADING_BROKER=kraken in staging: Kraken has no paper account; "
                "use paper or ibkr with a paper account (DU...)"
            )
        if not ibkr_account.upper().startswith("DU"):
            return (
                f"TRADING_BROKER=ibkr in staging needs IBKR's paper account: IBKR_ACCOUNT="
                f"{ibkr_account!r} is not a paper account id (they start with DU)"
            )
        return None
    return f"unknown environment {environment!r}"
