"""The venue factory: which adapter an account gets, with which credentials, where refused."""

from __future__ import annotations

import pytest

from apps.credentials.services import broker_credential_set
from apps.model.venues import VenueConfigurationError
from apps.trading.services.common import venue_for
from apps.trading.venues.factory import venues_reset
from apps.trading.venues.ibkr.adapter import IbkrVenue
from apps.trading.venues.kraken.adapter import KrakenVenue
from apps.trading.venues.paper import PaperVenue
from tests.brokers.conftest import kraken_account
from tests.trading.factories import paper_account
from tradebot.env import Environment

pytestmark = pytest.mark.django_db


def test_factory_when_credentials_stored_encrypted_then_kraken_signs_with_them(
    kraken_settings, settings
) -> None:
    kraken = kraken_settings
    settings.KRAKEN_API_KEY = settings.KRAKEN_API_SECRET = ""  # nothing in the environment
    account, _ = kraken_account()
    broker_credential_set(
        account_id=account.pk, api_key=kraken.api_key, api_secret=kraken.api_secret, actor="test"
    )
    venues_reset()

    venue = venue_for(account, purpose="control")
    venue.connect()  # the fake checks the key and the HMAC signature

    assert isinstance(venue, KrakenVenue)
    assert kraken.calls_to("BalanceEx")


def test_factory_when_no_key_anywhere_then_clear_configuration_error(
    kraken_settings, settings
) -> None:
    settings.KRAKEN_API_KEY = ""
    account, _ = kraken_account()
    with pytest.raises(VenueConfigurationError, match="KRAKEN_API_KEY"):
        venue_for(account, purpose="control")


def test_factory_when_dev_then_live_broker_refused_paper_allowed(kraken_settings, settings) -> None:
    settings.ENVIRONMENT = Environment.DEV
    account, _ = kraken_account()
    with pytest.raises(VenueConfigurationError, match="dev never talks to a real broker"):
        venue_for(account, purpose="control")
    assert isinstance(venue_for(paper_account()), PaperVenue)


def test_factory_when_ibkr_then_control_and_execution_use_distinct_client_ids(settings) -> None:
    settings.IBKR_HOST, settings.IBKR_PORT, settings.IBKR_CLIENT_ID = "127.0.0.1", 4002, 17
    settings.IBKR_ACCOUNT = "DU1234567"
    account, _ = kraken_account()
    account.broker = "ibkr"
    account.save(update_fields=["broker"])
    venues_reset()

    execution = venue_for(account)
    control = venue_for(account, purpose="control")

    assert isinstance(execution, IbkrVenue)
    assert isinstance(control, IbkrVenue)
    assert venue_for(account) is execution  # one adapter per process and purpose
    assert {execution.client_id, control.client_id} == {17, 18}
    venues_reset()
