"""IbkrVenue over loopback: the real ib_async client against TwsFake's TWS API socket."""

from __future__ import annotations

import asyncio
import bisect
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from ib_async import IB
from ib_async.ib import StartupFetch

from apps.model.orders import OrderStatus
from apps.model.values import OrderType, Side
from apps.model.venues import (
    ConnectionState,
    VenueConfigurationError,
    VenueOrder,
    VenueRejected,
    VenueTemporaryError,
)
from apps.trading.venues.ibkr import session as ibkr_session
from apps.trading.venues.ibkr.adapter import IbkrVenue
from apps.trading.venues.ibkr.session import sessions_close_all
from apps.trading.venues.metrics import BROKER_MALFORMED_MESSAGES
from tests.fakes.tws import TwsFake

ACCOUNT = "DU1234567"
CLIENT_ID = 7


@pytest.fixture
def fake():
    with TwsFake(accounts=(ACCOUNT,)) as tws:
        yield tws


def make_venue(fake: TwsFake, **overrides) -> IbkrVenue:
    kwargs = {
        "host": fake.host,
        "port": fake.port,
        "client_id": CLIENT_ID,
        "account": ACCOUNT,
        # Long enough for a loaded CI machine; the tests that wait for a timeout pay it.
        "timeout_seconds": 3.0,
        "require_paper_account": True,
    }
    kwargs.update(overrides)
    return IbkrVenue(**kwargs)


@pytest.fixture
def venue(fake):
    yield make_venue(fake)
    sessions_close_all()


@pytest.fixture
def patient_venue(fake):
    """A 30 s ack timeout: far longer than any wait these tests may see."""
    yield make_venue(fake, timeout_seconds=30.0)
    sessions_close_all()


def order(
    cid: str = "o-1",
    *,
    side: Side = Side.BUY,
    quantity: str = "10",
    limit: str | None = "150.25",
    symbol: str = "AAPL",
    asset_class: str = "equity",
    broker_order_id: str | None = None,
) -> VenueOrder:
    return VenueOrder(
        client_order_id=cid,
        instrument=symbol,
        base=symbol,
        quote="USD",
        asset_class=asset_class,
        side=side,
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        quantity=Decimal(quantity),
        limit_price=Decimal(limit) if limit else None,
        broker_order_id=broker_order_id,
    )


def wait_until(predicate, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def malformed_count() -> float:
    """broker_malformed_messages_total{broker="ibkr"} as a scrape would show it."""
    for metric in BROKER_MALFORMED_MESSAGES.collect():
        for sample in metric.samples:
            if sample.name == "broker_malformed_messages_total" and sample.labels == {
                "broker": "ibkr"
            }:
                return sample.value
    return 0.0


def since_an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


# --- connection ---------------------------------------------------------------------------


def test_connect_when_fake_listens_then_handshake_done_and_client_id_sent(fake, venue):
    venue.connect()

    assert venue.connection_state() is ConnectionState.CONNECTED
    assert fake.connected_clients() == [CLIENT_ID]
    start = fake.calls("startApi")[0]
    assert start.fields[2] == str(CLIENT_ID)
    # the session asked for this client's open orders and subscribed the account
    assert fake.call_count("reqOpenOrders") == 1
    assert fake.calls("reqAccountUpdates")[0].fields[2:] == ["1", ACCOUNT]


def test_connect_when_venues_share_endpoint_then_one_connection_per_process(fake, venue):
    venue.connect()
    make_venue(fake).heartbeat()

    assert fake.call_count("startApi") == 1


def test_connect_when_account_not_managed_then_configuration_error_and_disconnected(fake):
    venue = make_venue(fake, account="DU7777777")
    try:
        with pytest.raises(VenueConfigurationError, match=r"DU7777777.*not managed.*DU1234567"):
            venue.connect()
        assert venue.connection_state() is ConnectionState.DISCONNECTED
        assert wait_until(lambda: fake.connected_clients() == [])
    finally:
        sessions_close_all()


def test_connect_when_paper_required_and_live_account_then_refused():
    with TwsFake(accounts=("U7654321",)) as live:
        venue = make_venue(live, account="U7654321")
        try:
            with pytest.raises(VenueConfigurationError, match=r"U7654321.*not a paper account"):
                venue.connect()
            assert wait_until(lambda: live.connected_clients() == [])
            assert live.placed_count() == 0
        finally:
            sessions_close_all()


def test_connect_when_paper_not_required_and_live_account_then_connected():
    with TwsFake(accounts=("U7654321",)) as live:
        venue = make_venue(live, account="U7654321", require_paper_account=False)
        try:
            venue.connect()
            assert venue.connection_state() is ConnectionState.CONNECTED
        finally:
            sessions_close_all()


def test_connect_when_client_id_in_use_then_temporary_error_with_tws_message(fake):
    other = IB()  # another process holding our client id, as a worker not yet stopped
    other.connect(fake.host, fake.port, clientId=CLIENT_ID, timeout=2, fetchFields=StartupFetch(0))
    venue = make_venue(fake)
    try:
        with pytest.raises(VenueTemporaryError, match="326: Unable to connect as the client id"):
            venue.connect()
        assert venue.connection_state() is ConnectionState.DISCONNECTED
    finally:
        sessions_close_all()
        other.disconnect()


def test_connect_when_nothing_listens_then_temporary_error():
    with TwsFake() as gone:
        port = gone.port
    venue = IbkrVenue(
        host="127.0.0.1", port=port, client_id=1, account=ACCOUNT, timeout_seconds=1.0
    )
    try:
        with pytest.raises(VenueTemporaryError, match="refused"):
            venue.connect()
        assert venue.connection_state() is ConnectionState.DISCONNECTED
    finally:
        sessions_close_all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"host": ""}, "host is empty"),
        ({"port": 0}, "not a TCP port"),
        ({"client_id": -1}, "client id"),
        ({"account": ""}, "account is empty"),
        ({"timeout_seconds": 0}, "timeout"),
    ],
)
def test_constructor_when_setting_invalid_then_configuration_error_names_it(overrides, message):
    kwargs = {"host": "127.0.0.1", "port": 4002, "client_id": 1, "account": ACCOUNT}
    kwargs.update(overrides)
    with pytest.raises(VenueConfigurationError, match=message):
        IbkrVenue(**kwargs)


def test_heartbeat_when_connected_then_current_time_round_trip(fake, venue):
    venue.heartbeat()
    venue.heartbeat()

    assert fake.call_count("reqCurrentTime") == 2


# --- orders -------------------------------------------------------------------------------


def test_submit_when_accepted_then_ack_is_perm_id_and_order_ref_is_client_order_id(fake, venue):
    ack = venue.submit(order("o-1"))

    placed = fake.order("o-1")
    assert ack.broker_order_id == str(placed.perm_id)
    assert (placed.symbol, placed.action, placed.quantity) == ("AAPL", "BUY", Decimal("10.0"))
    assert (placed.order_type, placed.limit_price, placed.account) == (
        "LMT",
        Decimal("150.25"),
        ACCOUNT,
    )
    assert fake.placed_count("o-1") == 1


def test_submit_when_market_sell_then_mkt_order_without_price(fake, venue):
    venue.submit(order("o-2", side=Side.SELL, limit=None))

    placed = fake.order("o-2")
    assert (placed.action, placed.order_type, placed.limit_price) == ("SELL", "MKT", None)


def test_submit_when_same_client_order_id_again_then_not_placed_twice(fake, venue):
    first = venue.submit(order("o-1"))
    second = venue.submit(order("o-1"))

    assert first == second
    assert fake.placed_count("o-1") == 1


def test_submit_when_crypto_then_rejected_and_nothing_sent(fake, venue):
    with pytest.raises(VenueRejected) as caught:
        venue.submit(order("c-1", symbol="BTC-USD", asset_class="crypto"))

    assert caught.value.code == "unsupported-asset-class"
    assert fake.placed_count() == 0


def count_waits(monkeypatch) -> list[tuple[float, bool]]:
    """Every wait of the adapter for TWS: (the timeout it was given, woken by TWS's data)."""
    waits: list[tuple[float, bool]] = []
    original = ibkr_session.IbkrSession.wait_for_tws

    async def counted(self, timeout: float) -> bool:
        woken = await original(self, timeout)
        waits.append((timeout, woken))
        return woken

    monkeypatch.setattr(ibkr_session.IbkrSession, "wait_for_tws", counted)
    return waits


def test_submit_when_tws_acks_then_returns_on_that_message_not_on_a_timer(
    fake, patient_venue, monkeypatch
):
    venue = patient_venue
    venue.connect()
    waits = count_waits(monkeypatch)

    ack = venue.submit(order("o-1"))

    assert ack.broker_order_id == str(fake.order("o-1").perm_id)
    # One wait, given the whole ack deadline (not a polling interval), ended by the open
    # order message: the ack is seen the moment ib_async has decoded it.
    assert len(waits) == 1
    timeout, woken = waits[0]
    assert woken is True
    assert timeout > 20


def test_cancel_when_tws_confirms_then_returns_on_that_message_not_on_a_timer(
    fake, patient_venue, monkeypatch
):
    venue = patient_venue
    ack = venue.submit(order("o-1"))
    waits = count_waits(monkeypatch)

    venue.cancel(order("o-1", broker_order_id=ack.broker_order_id))

    assert fake.order("o-1").status == "Cancelled"
    assert len(waits) == 1
    assert waits[0][1] is True


def test_submit_when_orders_outpace_tws_message_limit_then_paced_and_all_acked(
    fake, patient_venue, monkeypatch
):
    # TWS refuses more than 50 API messages a second (error 100, then disconnects), so
    # ib_async holds back the 46th message of any second. That hold is the order path's
    # tail when orders come faster than 45 a second: it must stay, not be tuned away.
    venue = patient_venue
    venue.connect()
    session = ibkr_session._session(fake.host, fake.port, CLIENT_ID, create=False)
    conn = session.ib.client.conn
    sent_at: list[float] = []
    original = conn.sendMsg

    def stamped(msg: bytes) -> None:
        sent_at.append(session.loop.time())  # the clock ib_async paces with
        original(msg)

    monkeypatch.setattr(conn, "sendMsg", stamped)

    acks = [venue.submit(order(f"o-{i}", limit=None)) for i in range(60)]

    assert len({a.broker_order_id for a in acks}) == 60
    assert fake.placed_count() == 60
    assert len(sent_at) == 60
    busiest = max(bisect.bisect_right(sent_at, t + 1.0) - i for i, t in enumerate(sent_at))
    assert busiest <= 50


def test_order_status_when_ack_never_came_then_found_by_order_ref(fake, venue):
    fake.hold_next_order()
    with pytest.raises(VenueTemporaryError, match="no acknowledgement"):
        venue.submit(order("o-held"))

    status = venue.order_status(order("o-held"))

    assert status is not None
    assert status.client_order_id == "o-held"
    assert status.broker_order_id == str(fake.order("o-held").perm_id)
    assert status.status is OrderStatus.ACCEPTED
    assert (status.quantity, status.filled_quantity) == (Decimal("10"), Decimal("0"))


def test_order_status_when_order_never_reached_ib_then_none(fake, venue):
    fake.ignore_next_order()
    with pytest.raises(VenueTemporaryError):
        venue.submit(order("o-lost"))

    assert fake.placed_count("o-lost") == 1  # it was on the wire, the broker lost it
    assert venue.order_status(order("o-lost")) is None
    assert venue.order_status(order("never-sent")) is None


def test_cancel_when_working_then_ib_cancels_and_status_canceled(fake, venue):
    ack = venue.submit(order("o-1"))

    venue.cancel(order("o-1", broker_order_id=ack.broker_order_id))

    assert fake.order("o-1").status == "Cancelled"
    status = venue.order_status(order("o-1", broker_order_id=ack.broker_order_id))
    assert status.status is OrderStatus.CANCELED


def test_cancel_when_order_unknown_then_rejected_not_found(fake, venue):
    with pytest.raises(VenueRejected) as caught:
        venue.cancel(order("nobody"))

    assert caught.value.code == "not-found"
    assert fake.call_count("cancelOrder") == 0


def test_cancel_when_ib_lost_the_order_then_rejected_with_ib_10147(fake, venue):
    venue.submit(order("o-1"))
    fake.forget_order("o-1")

    with pytest.raises(VenueRejected, match="that needs to be cancelled is not found") as caught:
        venue.cancel(order("o-1"))

    assert caught.value.code == "10147"


def test_cancel_all_when_orders_working_then_global_cancel_and_count(fake, venue):
    venue.submit(order("o-1"))
    venue.submit(order("o-2", side=Side.SELL))
    fake.add_foreign_order(symbol="MSFT", action="BUY", quantity=Decimal(5), limit_price=Decimal(1))

    cancelled = venue.cancel_all()

    assert cancelled == 3
    assert fake.wait_for_calls("reqGlobalCancel")
    assert wait_until(lambda: all(o.status == "Cancelled" for o in fake.orders()))
    assert venue.open_orders() == []


def test_open_orders_when_foreign_order_then_listed_without_client_order_id(fake, venue):
    venue.submit(order("o-1"))
    perm_id = fake.add_foreign_order(
        symbol="MSFT", action="SELL", quantity=Decimal(3), limit_price=Decimal("400.5")
    )

    listed = {o.broker_order_id: o for o in venue.open_orders()}

    assert listed[str(fake.order("o-1").perm_id)].client_order_id == "o-1"
    foreign = listed[str(perm_id)]
    assert foreign.client_order_id is None
    assert (foreign.instrument, foreign.side, foreign.quantity) == ("MSFT", Side.SELL, Decimal(3))
    assert foreign.limit_price == Decimal("400.5")
    assert foreign.status is OrderStatus.ACCEPTED


def test_open_orders_when_cancelled_behind_our_back_then_gone_and_status_canceled(fake, venue):
    venue.submit(order("o-1"))
    fake.cancel_order("o-1", reason="Cancelled by the exchange")

    assert venue.open_orders() == []
    status = venue.order_status(order("o-1"))
    assert status.status is OrderStatus.CANCELED
    assert status.reason == "Cancelled by the exchange"


# --- fills --------------------------------------------------------------------------------


def test_fills_since_when_filled_then_fill_with_commission(fake, venue):
    ack = venue.submit(order("o-1"))
    exec_id = fake.fill("o-1", price=Decimal("150.10"), commission=Decimal("1.35"))

    fills = venue.fills_since(since_an_hour_ago())

    assert len(fills) == 1
    fill = fills[0]
    assert fill.trade_id == exec_id
    assert (fill.broker_order_id, fill.client_order_id) == (ack.broker_order_id, "o-1")
    assert (fill.instrument, fill.side) == ("AAPL", Side.BUY)
    assert (fill.quantity, fill.price, fill.fee) == (Decimal(10), Decimal("150.1"), Decimal("1.35"))
    assert fill.ts.utcoffset() == timedelta(0)
    assert abs(fill.ts - datetime.now(UTC)) < timedelta(minutes=1)
    assert venue.order_status(order("o-1")).status is OrderStatus.FILLED


def test_fills_since_when_since_after_fill_then_empty(fake, venue):
    venue.submit(order("o-1"))
    fake.fill("o-1", price=Decimal(150))

    assert venue.fills_since(datetime.now(UTC) + timedelta(minutes=1)) == []
    assert fake.calls("reqExecutions")[-1].fields[4] == ACCOUNT


def test_fills_since_when_naive_since_then_value_error(venue):
    with pytest.raises(ValueError, match="aware"):
        venue.fills_since(datetime(2025, 1, 1))


def test_submit_when_fill_arrives_before_accepted_status_then_ack_and_fill_reported(fake, venue):
    fake.fill_next_order_before_ack(price=Decimal("99.5"), commission=Decimal("0.5"))

    ack = venue.submit(order("o-fast", limit=None))

    assert ack.broker_order_id == str(fake.order("o-fast").perm_id)
    fills = venue.fills_since(since_an_hour_ago())
    assert [(f.client_order_id, f.quantity, f.fee) for f in fills] == [
        ("o-fast", Decimal(10), Decimal("0.5"))
    ]
    assert venue.order_status(order("o-fast")).status is OrderStatus.FILLED


def test_fills_since_when_execution_reported_twice_then_returned_once(fake, venue):
    venue.submit(order("o-1"))
    exec_id = fake.fill("o-1", price=Decimal(150), duplicate=True)

    fills = venue.fills_since(since_an_hour_ago())

    assert [f.trade_id for f in fills] == [exec_id]


def test_order_status_when_partially_filled_then_cancelled_keeps_filled_quantity(fake, venue):
    venue.submit(order("o-1"))
    fake.fill("o-1", price=Decimal(150), quantity=Decimal(4))

    partial = venue.order_status(order("o-1"))
    assert (partial.status, partial.filled_quantity) == (OrderStatus.PARTIALLY_FILLED, Decimal(4))
    assert partial.avg_fill_price == Decimal(150)

    venue.cancel(order("o-1"))

    final = venue.order_status(order("o-1"))
    assert (final.status, final.filled_quantity) == (OrderStatus.CANCELED, Decimal(4))
    assert [f.quantity for f in venue.fills_since(since_an_hour_ago())] == [Decimal(4)]


# --- positions and balances ---------------------------------------------------------------


def test_positions_when_filled_and_changed_behind_our_back_then_broker_view(fake, venue):
    venue.submit(order("o-1"))
    fake.fill("o-1", price=Decimal(150))
    positions = {p.instrument: p for p in venue.positions()}
    assert (positions["AAPL"].quantity, positions["AAPL"].avg_price) == (Decimal(10), Decimal(150))

    fake.set_position("AAPL", Decimal(0))
    fake.set_position("MSFT", Decimal(-3), Decimal("401.25"))

    positions = {p.instrument: p for p in venue.positions()}
    assert set(positions) == {"MSFT"}
    assert (positions["MSFT"].quantity, positions["MSFT"].avg_price) == (
        Decimal(-3),
        Decimal("401.25"),
    )


def test_positions_when_other_account_then_left_out(fake, venue):
    fake.set_position("AAPL", Decimal(5), Decimal(10), account="DU9999999")

    assert venue.positions() == []


def test_balances_when_cash_in_two_currencies_then_one_balance_each(fake, venue):
    fake.set_cash("USD", Decimal("1000.50"))
    fake.set_cash("EUR", Decimal("250"))

    balances = {b.currency: b for b in venue.balances()}

    assert set(balances) == {"USD", "EUR"}
    assert balances["USD"].total == Decimal("1000.50")
    assert balances["EUR"].total == Decimal("250")
    assert balances["USD"].available == Decimal("1250.50")  # IB reports it in the base currency
    assert balances["EUR"].available is None


def test_balances_when_filled_then_cash_moves(fake, venue):
    fake.set_cash("USD", Decimal("10000"))
    venue.submit(order("o-1"))
    fake.fill("o-1", price=Decimal(150), commission=Decimal(1))

    (usd,) = venue.balances()

    assert usd.total == Decimal("10000") - Decimal(1500) - Decimal(1)


# --- error codes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. INSUFFICIENT BUYING POWER"),
        (202, "Order Canceled - reason:"),
        (103, "Duplicate order id"),
        (110, "The price does not conform to the minimum price variation for this contract."),
        (434, "The order size cannot be zero."),
        (10147, "OrderId 1 that needs to be cancelled is not found."),
    ],
)
def test_submit_when_ib_refuses_then_rejected_with_ib_code_and_message(fake, venue, code, message):
    fake.reject_next_order(code, message)

    with pytest.raises(VenueRejected) as caught:
        venue.submit(order("o-bad"))

    assert caught.value.code == str(code)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("code", "message"), [(502, "Couldn't connect to TWS."), (504, "Not connected")]
)
def test_submit_when_ib_says_not_connected_then_temporary_error(fake, venue, code, message):
    fake.reject_next_order(code, message)

    with pytest.raises(VenueTemporaryError, match=message):
        venue.submit(order("o-unsure"))


def test_submit_when_404_keeps_order_working_then_rejected_and_cancelled_at_ib(fake, venue):
    fake.reject_next_order(
        404,
        "Shares for this order are not immediately available for short sale.",
        keep_open=True,
    )

    with pytest.raises(VenueRejected, match="not immediately available") as caught:
        venue.submit(order("o-short", side=Side.SELL))

    assert caught.value.code == "404"
    assert fake.wait_for_calls("cancelOrder")
    assert wait_until(lambda: fake.order("o-short").status == "Cancelled")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (399, "Order Message: Warning: your order will not be placed at the exchange until open"),
        (2109, "Order Event Warning: Attribute 'Outside Regular Trading Hours' is ignored"),
    ],
)
def test_submit_when_ib_sends_a_notice_about_the_order_then_acknowledged(
    fake, venue, code, message
):
    fake.warn_next_order(code, message)

    ack = venue.submit(order("o-1"))

    assert ack.broker_order_id == str(fake.order("o-1").perm_id)
    assert venue.order_status(order("o-1")).status is OrderStatus.ACCEPTED


def test_cancel_when_order_belongs_to_another_client_then_refused_and_not_sent(fake, venue):
    venue.submit(order("o-1"))
    perm_id = fake.add_foreign_order(
        symbol="MSFT", action="BUY", quantity=Decimal(1), order_ref="theirs", client_id=99
    )

    with pytest.raises(VenueRejected, match="client id 99") as caught:
        venue.cancel(order("theirs", broker_order_id=str(perm_id)))

    assert caught.value.code == "foreign-order"
    assert fake.call_count("cancelOrder") == 0
    assert fake.order("o-1").status == "Submitted"


def test_connection_state_when_1100_then_disconnected_until_1102(fake, venue):
    venue.connect()

    fake.emit_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    assert wait_until(lambda: venue.connection_state() is ConnectionState.DISCONNECTED)
    with pytest.raises(VenueTemporaryError, match="1100"):
        venue.submit(order("o-1"))
    with pytest.raises(VenueTemporaryError, match="1100"):
        venue.heartbeat()
    assert fake.placed_count() == 0

    fake.emit_error(1102, "Connectivity between IB and TWS has been restored - data maintained.")
    assert wait_until(lambda: venue.connection_state() is ConnectionState.CONNECTED)
    venue.heartbeat()
    venue.submit(order("o-1"))
    assert fake.placed_count("o-1") == 1


def test_connection_state_when_1101_then_connected_and_account_resubscribed(fake, venue):
    venue.connect()
    subscriptions = fake.call_count("reqAccountUpdates")
    fake.emit_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    assert wait_until(lambda: venue.connection_state() is ConnectionState.DISCONNECTED)

    fake.emit_error(1101, "Connectivity between IB and TWS has been restored - data lost.")

    assert wait_until(lambda: venue.connection_state() is ConnectionState.CONNECTED)
    calls = fake.wait_for_calls("reqAccountUpdates", subscriptions + 1)
    assert calls[-1].fields[2:] == ["1", ACCOUNT]


def test_connection_when_dropped_then_disconnected_temporary_error_then_reconnects(fake, venue):
    venue.connect()

    assert fake.drop_connections() == 1
    assert wait_until(lambda: venue.connection_state() is ConnectionState.DISCONNECTED)

    fake.refuse_connections()
    with pytest.raises(VenueTemporaryError):
        venue.heartbeat()
    with pytest.raises(VenueTemporaryError):
        venue.open_orders()
    assert venue.connection_state() is ConnectionState.DISCONNECTED

    fake.accept_connections()
    venue.heartbeat()
    assert venue.connection_state() is ConnectionState.CONNECTED
    assert fake.call_count("startApi") == 2
    venue.submit(order("o-after"))
    assert fake.placed_count("o-after") == 1


def test_submit_when_connection_drops_before_ack_then_temporary_error_and_found_later(fake, venue):
    fake.drop_connection_on_next_order()

    with pytest.raises(VenueTemporaryError, match="outcome unknown|connection lost"):
        venue.submit(order("o-drop"))

    status = venue.order_status(order("o-drop"))  # reconnects lazily
    assert status is not None
    assert status.status is OrderStatus.ACCEPTED
    assert fake.placed_count("o-drop") == 1


@pytest.mark.parametrize("kind", sorted(TwsFake.MALFORMED))
def test_malformed_message_when_received_then_counted_and_session_survives(fake, venue, kind):
    venue.connect()
    before = malformed_count()

    fake.send_malformed(kind)
    venue.heartbeat()  # runs the loop: the bad message is read and skipped

    assert wait_until(
        lambda: (
            (venue.connection_state(), malformed_count()) == (ConnectionState.CONNECTED, before + 1)
        )
    )
    assert malformed_count() == before + 1
    ack = venue.submit(order(f"o-after-{kind}"))
    assert ack.broker_order_id == str(fake.order(f"o-after-{kind}").perm_id)


def test_malformed_message_when_received_during_handshake_then_counted_and_connected(
    fake, patient_venue
):
    venue = patient_venue
    fake.malformed_on_connect = True
    before = malformed_count()

    venue.connect()

    assert venue.connection_state() is ConnectionState.CONNECTED
    assert malformed_count() == before + 1


def test_venue_when_called_inside_a_running_event_loop_then_clear_error(fake, venue):
    async def from_async_code():
        venue.heartbeat()

    with pytest.raises(RuntimeError, match="synchronous"):
        asyncio.run(from_async_code())
