"""Fixtures for the venue adapters: the Kraken adapter against the loopback Kraken fake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.trading.venues.kraken.adapter import KrakenVenue
from tests.fakes.kraken import KrakenFake, kraken_fake_running

INSTRUMENTS = ("BTC-USD", "ETH-USD", "ETH-BTC")
BALANCES = {"USD": "100000", "BTC": "2", "ETH": "10"}


def kraken_venue_for(fake: KrakenFake, **overrides: Any) -> KrakenVenue:
    """A KrakenVenue on the fake: no client-side rate limiting, short timeouts."""
    kwargs: dict[str, Any] = {
        "api_key": fake.api_key,
        "api_secret": fake.api_secret,
        "api_url": fake.url,
        "timeout_seconds": 3,
        "instruments": INSTRUMENTS,
        "rate_limit": False,
    }
    kwargs.update(overrides)
    return KrakenVenue(**kwargs)


@pytest.fixture
def kraken_fake() -> Iterator[KrakenFake]:
    yield from kraken_fake_running(balances=BALANCES)


@pytest.fixture
def kraken_venue(kraken_fake: KrakenFake) -> Iterator[KrakenVenue]:
    venue = kraken_venue_for(kraken_fake)
    venue.connect()
    yield venue
    venue.close()
