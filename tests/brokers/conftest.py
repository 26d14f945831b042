"""Kraken-backed fixtures: the loopback Kraken fake, settings pointing the app's venue
factory at it, and an account trading there (BTC-USD with Kraken's lot and tick sizes)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from apps.accounts.models import Account
from apps.marketdata.models import Instrument
from apps.risk.models import RiskLimit
from apps.trading.models import Order
from apps.trading.services.accounts import account_get_or_create
from apps.trading.venues.factory import venues_reset
from apps.trading.venues.kraken.ids import kraken_client_order_id
from tests.fakes.kraken import KrakenFake, kraken_fake_running

STARTING_USD = "10000"


@pytest.fixture
def kraken() -> Iterator[KrakenFake]:
    yield from kraken_fake_running(balances={"USD": STARTING_USD})


@pytest.fixture
def kraken_settings(settings, kraken: KrakenFake) -> KrakenFake:
    """The app's venue factory builds Kraken adapters on the fake (in this process)."""
    settings.KRAKEN_API_URL = kraken.url
    settings.KRAKEN_API_KEY = kraken.api_key
    settings.KRAKEN_API_SECRET = kraken.api_secret
    settings.KRAKEN_TIMEOUT_SECONDS = 3.0
    settings.KRAKEN_RATE_LIMIT = False
    venues_reset()
    yield kraken
    venues_reset()


def kraken_env(kraken: KrakenFake) -> dict[str, str]:
    """The same, for a worker subprocess."""
    return {
        "KRAKEN_API_URL": kraken.url,
        "KRAKEN_API_KEY": kraken.api_key,
        "KRAKEN_API_SECRET": kraken.api_secret,
        "KRAKEN_TIMEOUT_SECONDS": "3",
        "KRAKEN_RATE_LIMIT": "false",
    }


def kraken_account() -> tuple[Account, Instrument]:
    account = account_get_or_create(
        name="kraken", broker="kraken", currency="USD", starting_cash=Decimal(STARTING_USD)
    )
    RiskLimit.objects.update_or_create(
        account=account,
        defaults={"max_order_notional": Decimal(5000), "max_position_notional": Decimal(20000)},
    )
    instrument, _ = Instrument.objects.get_or_create(
        symbol="BTC-USD",
        defaults={
            "base": "BTC",
            "quote": "USD",
            "tick_size": Decimal("0.1"),
            "lot_size": Decimal("0.00000001"),
        },
    )
    return account, instrument


def broker_orders(kraken: KrakenFake, order: Order) -> list[dict]:
    """Every order the fake holds (open or closed) carrying ``order``'s client id."""
    return kraken.orders_by_cl_ord_id(kraken_client_order_id(order.client_order_id))
