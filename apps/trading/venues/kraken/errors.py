"""Kraken's error strings: reading them out of a ccxt exception, and the prefix tables that
sort them into configuration, temporary and rejection errors (``KrakenVenue._translate``)."""

from __future__ import annotations

import json
import re

# Kraken error prefixes, in the order they are tried (the first that matches wins).
_CONFIGURATION_ERRORS = (
    "EAPI:Invalid key",
    "EAPI:Invalid signature",
    "EAPI:Feature disabled",
    "EGeneral:Permission denied",
    "ETrade:User Locked",
)
_TEMPORARY_ERRORS = (
    "EAPI:Rate limit exceeded",
    "EAPI:Invalid nonce",
    "EOrder:Rate limit exceeded",
    "EGeneral:Temporary lockout",
    "EGeneral:Too many requests",
    "EGeneral:Internal error",
    "EService:",
    "EDatabase:",
)
_REJECTION_ERRORS = ("EOrder:", "EGeneral:Invalid arguments", "EQuery:", "ETrade:", "EFunding:")
_UNKNOWN_ORDER = ("EOrder:Invalid order", "EOrder:Unknown order")


def kraken_errors(message: str) -> list[str]:
    """Kraken's error strings inside a ccxt exception message (``kraken {"error": [...]}``)."""
    start = message.find("{")
    if start >= 0:
        try:
            payload = json.loads(message[start:])
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), list):
            return [e for e in payload["error"] if isinstance(e, str)]
    return re.findall(
        r"\b([EW](?:API|General|Query|Order|Trade|Funding|Service|Database|Session)"
        r":[^\"',\]]*)",
        message,
    )


def error_code(error: str) -> str:
    """``"EGeneral:Invalid arguments:volume"`` -> ``"EGeneral:Invalid arguments"``."""
    return ":".join(error.split(":")[:2])
