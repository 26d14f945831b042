"""The ccxt client the adapter talks through, and the check on a configured api_url."""

from __future__ import annotations

from urllib.parse import urlsplit

import ccxt

from apps.model.venues import VenueConfigurationError


class _KrakenClient(ccxt.kraken):
    """ccxt's Kraken, refusing a 2xx answer that is not a Kraken envelope.

    Left alone, ccxt hands a non-JSON body (or JSON without ``result``) to the
    parsers, whose ``safe_*`` lookups turn it into an empty answer: an order list that
    is silently empty. A ``BadResponse`` here makes it an error instead.
    """

    def handle_errors(self, code, reason, url, method, headers, body, response, *args):  # noqa: ANN001, ANN201
        super().handle_errors(code, reason, url, method, headers, body, response, *args)
        if 200 <= int(code) < 300 and not (
            isinstance(response, dict)
            and isinstance(response.get("error"), list)
            and isinstance(response.get("result"), dict | list)
        ):
            snippet = (body or "")[:200]
            raise ccxt.BadResponse(f"kraken {method} {url}: not a Kraken envelope: {snippet!r}")
        return None


def _check_api_url(api_url: str) -> None:
    """https, or plain http to this machine only (the signed key must not cross a network)."""
    url = urlsplit(api_url)
    loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
    if (
        not url.hostname
        or url.scheme not in ("http", "https")
        or (url.scheme == "http" and not loopback)
    ):
        raise VenueConfigurationError(
            f"kraken: api_url {api_url!r} must be https://HOST, or http:// to 127.0.0.1/localhost"
        )


def kraken_client(
    *,
    api_url: str | None,
    timeout_seconds: float,
    rate_limit: bool,
    api_key: str = "",
    api_secret: str = "",
) -> _KrakenClient:
    """The ccxt client for Kraken (the adapter's and the market-data feed's), on ``api_url``
    when given (checked: https, or http to loopback only)."""
    exchange = _KrakenClient(
        {
            "apiKey": api_key,
            "secret": api_secret,
            "timeout": int(timeout_seconds * 1000),
            "enableRateLimit": rate_limit,
        }
    )
    if api_url:
        _check_api_url(api_url)
        base = api_url.rstrip("/")
        exchange.urls["api"] = {**exchange.urls["api"], "public": base, "private": base}
    return exchange
