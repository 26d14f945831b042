"""The adapter for an account's broker, built from settings (and stored credentials).

One adapter per (account, purpose) per process: the execution worker keeps its broker
session open across tasks (an IBKR socket, a Kraken dead-man switch); the kill switch
and the panel ("control") get their own, so IBKR sees a different client id.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from django.conf import settings

from apps.credentials.exceptions import CredentialUndecryptable
from apps.credentials.selectors import broker_credentials_for
from apps.marketdata.models import AssetClass, Instrument
from apps.model.venues import Venue, VenueConfigurationError
from apps.trading.venues.paper import PaperVenue
from apps.trading.venues.policy import broker_refusal

if TYPE_CHECKING:
    from apps.accounts.models import Account

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_cache: dict[tuple[int, str, str], Venue] = {}


def _credentials(account: Account) -> tuple[str, str]:
    """API key and secret: the encrypted database row if there is one, else settings."""
    try:
        stored = broker_credentials_for(account_id=account.pk)
    except CredentialUndecryptable as exc:
        raise VenueConfigurationError(f"account {account.name}: {exc}") from exc
    if stored is not None:
        return stored.api_key, stored.api_secret
    return settings.KRAKEN_API_KEY, settings.KRAKEN_API_SECRET


def _build(account: Account, purpose: str) -> Venue:
    broker = account.broker
    refusal = broker_refusal(
        environment=settings.ENVIRONMENT,
        broker=broker,
        kraken_api_url=settings.KRAKEN_API_URL,
        ibkr_host=settings.IBKR_HOST,
        ibkr_account=settings.IBKR_ACCOUNT,
    )
    if refusal:
        raise VenueConfigurationError(f"account {account.name}: {refusal}")
    if broker == "paper":
        return PaperVenue(account)
    # The instruments whose balances are positions (spot): every active crypto instrument
    # and whatever the account ever traded (an adapter also learns new ones as it sends).
    instruments = set(
        Instrument.objects.filter(active=True, asset_class=AssetClass.CRYPTO).values_list(
            "symbol", flat=True
        )
    ) | set(account.orders.values_list("instrument__symbol", flat=True).distinct())
    # The live adapters are imported only when their broker is configured: ccxt takes
    # ~0.45 s and ib_async ~0.3 s to import (python -X importtime), and a process of a
    # paper or Kraken deployment need not load IBKR's library (nor the reverse).
    if broker == "kraken":
        from apps.trading.venues.kraken.adapter import KrakenVenue

        key, secret = _credentials(account)
        if not key or not secret:
            raise VenueConfigurationError(
                f"account {account.name}: Kraken needs KRAKEN_API_KEY and KRAKEN_API_SECRET "
                "(or a stored broker credential)"
            )
        return KrakenVenue(
            api_key=key,
            api_secret=secret,
            api_url=settings.KRAKEN_API_URL or None,
            timeout_seconds=settings.KRAKEN_TIMEOUT_SECONDS,
            # One dead-man timer per API key: only the sender arms it; a control instance
            # (kill switch, reconcile command, panel) must neither arm nor disarm it.
            dead_man_timeout_seconds=(
                settings.KRAKEN_DEAD_MAN_TIMEOUT_SECONDS if purpose == "execution" else 0
            ),
            dead_man_refresh_seconds=settings.KRAKEN_DEAD_MAN_REFRESH_SECONDS,
            instruments=sorted(set(instruments)),
            rate_limit=settings.KRAKEN_RATE_LIMIT,
        )
    from apps.trading.venues.ibkr.adapter import IbkrVenue  # lazily: see above

    return IbkrVenue(
        host=settings.IBKR_HOST,
        port=settings.IBKR_PORT,
        client_id=settings.IBKR_CLIENT_ID + (0 if purpose == "execution" else 1),
        account=settings.IBKR_ACCOUNT,
        timeout_seconds=settings.IBKR_TIMEOUT_SECONDS,
        require_paper_account=settings.ENVIRONMENT == "staging",
    )


def venue_get(account: Account, *, purpose: str = "execution") -> Venue:
    """The process's adapter for ``account`` (built once, reused)."""
    key = (account.pk, account.broker, purpose)
    with _lock:
        venue = _cache.get(key)
        if venue is None:
            venue = _build(account, purpose)
            _cache[key] = venue
        return venue


def venues_reset() -> None:
    """Close and forget every adapter of this process (tests, settings changes)."""
    with _lock:
        venues = list(_cache.values())
        _cache.clear()
    for venue in venues:
        try:
            venue.close()
        except Exception:  # noqa: BLE001 - closing is best effort, but say so
            logger.warning("closing the %s adapter failed", venue.name, exc_info=True)
