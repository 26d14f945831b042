"""The engine's start-up reconciliation of an IBKR account never takes the execution
worker's TWS client id (TWS accepts one connection per client id), and lets go of its
own session once done: the worker, connected or not yet, keeps sending orders."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest

from apps.brokers.models import ReconciliationOutcome
from apps.engine.management.commands.run_engine import engine_startup_reconcile
from apps.trading.services.accounts import account_get_or_create
from apps.trading.venues.factory import venues_reset
from apps.trading.venues.ibkr.adapter import IbkrVenue
from tests.fakes.tws import TwsFake
from tradebot.env import Environment

pytestmark = pytest.mark.django_db(transaction=True)
WORKER_CLIENT_ID = 31


@pytest.fixture
def tws(settings) -> Iterator[TwsFake]:
    with TwsFake(cash={"USD": Decimal("10000")}) as fake:
        settings.ENVIRONMENT = Environment.TEST
        settings.IBKR_HOST, settings.IBKR_PORT = fake.host, fake.port
        settings.IBKR_CLIENT_ID, settings.IBKR_ACCOUNT = WORKER_CLIENT_ID, "DU1234567"
        settings.IBKR_TIMEOUT_SECONDS = 3.0
        venues_reset()
        yield fake
        venues_reset()
        from apps.trading.venues.ibkr.session import sessions_close_all

        sessions_close_all()


def only_worker_connected(fake: TwsFake, timeout: float = 5.0) -> bool:
    """Whether only the worker's client id is connected, once the fake has seen the engine's
    control session close (the fake notices a closed socket on its own loop, a moment later)."""
    deadline = time.monotonic() + timeout
    while fake.connected_clients() != [WORKER_CLIENT_ID]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _worker_session(fake: TwsFake) -> IbkrVenue:
    """The execution worker's adapter (another process in production)."""
    venue = IbkrVenue(
        host=fake.host, port=fake.port, client_id=WORKER_CLIENT_ID, account="DU1234567",
        timeout_seconds=3.0,
    )  # fmt: skip
    venue.connect()
    return venue


def test_startup_reconcile_when_worker_connected_then_clean_and_worker_id_left_alone(tws) -> None:
    worker = _worker_session(tws)
    account = account_get_or_create(
        name="ibkr", broker="ibkr", currency="USD", starting_cash=Decimal("10000")
    )
    try:
        runs = engine_startup_reconcile([SimpleNamespace(account=account)])  # type: ignore[list-item]
        assert [run.outcome for _, run in runs] == [ReconciliationOutcome.CLEAN], runs[0][1].error
        # The engine's control session is closed; only the worker is still connected.
        assert only_worker_connected(tws), tws.connected_clients()
    finally:
        worker.close()


def test_startup_reconcile_when_done_then_worker_can_connect(tws) -> None:
    account = account_get_or_create(
        name="ibkr", broker="ibkr", currency="USD", starting_cash=Decimal("10000")
    )
    runs = engine_startup_reconcile([SimpleNamespace(account=account)])  # type: ignore[list-item]
    assert runs[0][1].outcome == ReconciliationOutcome.CLEAN, runs[0][1].error
    worker = _worker_session(tws)  # raises (TWS 326: client id in use) if the engine kept it
    try:
        assert only_worker_connected(tws), tws.connected_clients()
    finally:
        worker.close()
