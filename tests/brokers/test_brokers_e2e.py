"""The brokers through the app's own paths (decision -> order_send -> sync -> reconcile ->
kill switch), each against its loopback fake driven by the real client library."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from apps.accounts.models import Account
from apps.brokers.models import Discrepancy
from apps.brokers.services.connectivity import broker_sync
from apps.brokers.services.reconcile import reconcile_account
from apps.marketdata.models import AssetClass, Instrument
from apps.risk.domain.modes import SystemMode
from apps.risk.models import RiskLimit
from apps.risk.services.modes import system_mode_get
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.models import Fill, Order, Position
from apps.trading.services import orders as services
from apps.trading.services.accounts import account_get_or_create
from apps.trading.services.decisions import decision_make
from apps.trading.services.kill_switch import kill_switch_engage
from apps.trading.venues.factory import venues_reset
from tests.brokers.conftest import broker_orders, kraken_account
from tests.fakes.tws import TwsFake
from tests.trading.factories import T0

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_queue(monkeypatch):
    from apps.trading import tasks

    monkeypatch.setattr(tasks.order_send, "delay", lambda **kw: None)


def _decide(account: Account, symbol: str, price: str, stake: str = "1000") -> Order:
    outcome = decision_make(
        account=account,
        signal=Signal(
            instrument=symbol, ts=T0, action=SignalAction.ENTER_LONG, price=Decimal(price),
            inputs={"test": "e2e"},
        ),
        strategy="sma_cross",
        strategy_params={"fast": 10, "slow": 30},
        stake=Decimal(stake),
        reference_price=Decimal(price), reference_ts=T0,
    )  # fmt: skip
    assert outcome.order is not None
    return outcome.order


# --- Kraken -----------------------------------------------------------------------------


def test_kraken_when_broker_refuses_then_rejected_with_krakens_reason(kraken_settings) -> None:
    kraken = kraken_settings
    account, _ = kraken_account()
    kraken.fail_next("AddOrder", "EOrder:Insufficient funds")

    order = services.order_send(order_id=_decide(account, "BTC-USD", "20000").pk)

    assert order.status == "rejected"
    assert "Insufficient funds" in order.status_reason
    assert broker_orders(kraken, order) == []
    from apps.notifications.models import Notification

    note = Notification.objects.get(code="order.rejected")
    assert note.severity == "warning"  # Telegram, per table 5.1
    assert "Insufficient funds" in note.body


def test_kraken_when_trading_then_dead_man_switch_armed_and_refreshed(kraken_settings) -> None:
    kraken = kraken_settings
    account, _ = kraken_account()

    broker_sync(account=account)

    assert kraken.dead_man_armed
    assert kraken.dead_man_timeouts[-1] == 60


def test_kraken_kill_switch_when_orders_open_then_one_mass_cancel_at_kraken(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    account, _ = kraken_account()
    order = services.order_send(order_id=_decide(account, "BTC-USD", "20000").pk)
    assert order.status == "accepted"

    kill_switch_engage(actor="test", source="cli", reason="kraken mass cancel")

    assert len(kraken.calls_to("CancelAll")) == 1
    assert len(kraken.calls_to("CancelOrder")) == 0
    assert kraken.open_orders() == []
    order.refresh_from_db()
    assert order.status == "pending_cancel"
    reconcile_account(account=account, trigger="command")  # Kraken confirms: final
    order.refresh_from_db()
    assert order.status == "canceled"
    assert system_mode_get() is SystemMode.KILL


# --- Interactive Brokers ----------------------------------------------------------------


@pytest.fixture
def tws(settings) -> Iterator[TwsFake]:
    with TwsFake(cash={"USD": Decimal("10000")}) as fake:
        settings.IBKR_HOST, settings.IBKR_PORT = "127.0.0.1", fake.port
        settings.IBKR_CLIENT_ID, settings.IBKR_ACCOUNT = 31, "DU1234567"
        settings.IBKR_TIMEOUT_SECONDS = 5.0
        venues_reset()
        yield fake
        venues_reset()
        from apps.trading.venues.ibkr.session import sessions_close_all

        sessions_close_all()


def _ibkr_account() -> Account:
    account = account_get_or_create(
        name="ibkr", broker="ibkr", currency="USD", starting_cash=Decimal("10000")
    )
    RiskLimit.objects.update_or_create(
        account=account,
        defaults={"max_order_notional": Decimal(5000), "max_position_notional": Decimal(20000)},
    )
    Instrument.objects.get_or_create(
        symbol="AAPL",
        defaults={"base": "AAPL", "quote": "USD", "asset_class": AssetClass.EQUITY,
                  "tick_size": Decimal("0.01"), "lot_size": Decimal("1")},
    )  # fmt: skip
    return account


def test_ibkr_when_order_filled_then_books_equal_tws_and_a_change_behind_our_back_pauses(
    tws,
) -> None:
    account = _ibkr_account()
    order = services.order_send(order_id=_decide(account, "AAPL", "200").pk)
    assert order.status == "accepted"
    assert tws.placed_count(order.client_order_id) == 1

    tws.fill(order.client_order_id, price=Decimal("200"), commission=Decimal("1.00"))
    broker_sync(account=account)
    broker_sync(account=account)  # the same executions again: booked once

    order.refresh_from_db()
    assert order.status == "filled"
    assert Fill.objects.filter(order=order).count() == 1
    assert Position.objects.get(account=account).quantity == order.quantity
    assert reconcile_account(account=account, trigger="command").outcome == "clean"

    tws.set_position("AAPL", order.quantity + 3, Decimal("200"))
    run = reconcile_account(account=account, trigger="command")

    assert run.outcome == "discrepancies"
    assert Decimal(Discrepancy.objects.get(kind="position").broker) == order.quantity + 3
    assert system_mode_get() is SystemMode.PAUSE
