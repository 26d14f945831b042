"""The Kraken adapter: the real ccxt client over loopback against the Kraken fake.

Pure tests first (id and symbol mapping, status and error tables, configuration),
then the adapter end to end: orders, lost acks, cancels, the dead-man switch, fills,
balances, and every class of error Kraken (or the network) can produce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from urllib.parse import urlencode

import ccxt
import pytest
import requests

from apps.model.orders import OrderStatus
from apps.model.values import OrderType, Side
from apps.model.venues import (
    BrokerBalance,
    BrokerPosition,
    ConnectionState,
    VenueConfigurationError,
    VenueOrder,
    VenueRejected,
    VenueTemporaryError,
)
from apps.trading.venues.kraken.adapter import KrakenVenue
from apps.trading.venues.kraken.errors import error_code, kraken_errors
from apps.trading.venues.kraken.ids import (
    KILL_ORDER_ID_PREFIX,
    ORDER_ID_PREFIX,
    kraken_client_order_id,
    our_client_order_id,
)
from apps.trading.venues.kraken.mapping import SymbolMap, order_status_from_kraken, split_symbol
from apps.trading.venues.metrics import BROKER_MALFORMED_MESSAGES
from tests.fakes.kraken import KrakenFake, valid_cl_ord_id
from tests.trading.venues.conftest import BALANCES, kraken_venue_for


def an_order(
    *,
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.LIMIT,
    quantity: str = "0.5",
    price: str | None = "20000.0",
    instrument: str = "BTC-USD",
    client_order_id: str | None = None,
    broker_order_id: str | None = None,
    reduce_only: bool = False,
) -> VenueOrder:
    base, quote = instrument.split("-")
    return VenueOrder(
        client_order_id=client_order_id or f"tb-{uuid.uuid4().hex}",
        instrument=instrument,
        base=base,
        quote=quote,
        asset_class="crypto",
        side=side,
        order_type=order_type,
        quantity=D(quantity),
        limit_price=D(price) if price is not None and order_type is OrderType.LIMIT else None,
        reduce_only=reduce_only,
        broker_order_id=broker_order_id,
    )


def acked(order: VenueOrder, txid: str) -> VenueOrder:
    return VenueOrder(**{**order.__dict__, "broker_order_id": txid})


def malformed_count() -> float:
    """broker_malformed_messages_total{broker="kraken"}, read from the counter itself."""
    for family in BROKER_MALFORMED_MESSAGES.collect():
        for sample in family.samples:
            if sample.name == "broker_malformed_messages_total" and sample.labels == {
                "broker": "kraken"
            }:
                return sample.value
    return 0.0


def wait_for(predicate, timeout: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- pure: ids, symbols, statuses, errors, configuration --------------------------


def test_kraken_client_order_id_when_our_order_id_then_long_uuid_both_ways():
    # Arrange
    hex_ = uuid.uuid4().hex
    # Act
    cl_ord_id = kraken_client_order_id(f"tb-{hex_}")
    # Assert
    assert cl_ord_id == str(uuid.UUID(hex=hex_))
    assert valid_cl_ord_id(cl_ord_id)
    assert our_client_order_id(cl_ord_id) == f"tb-{hex_}"


def test_kraken_client_order_id_when_kill_switch_id_then_short_uuid_both_ways():
    hex_ = uuid.uuid4().hex
    cl_ord_id = kraken_client_order_id(f"tb-kill-{hex_}")
    assert cl_ord_id == hex_
    assert valid_cl_ord_id(cl_ord_id)
    assert our_client_order_id(cl_ord_id) == f"tb-kill-{hex_}"


def test_kraken_client_order_id_when_short_text_then_sent_as_is_and_long_text_refused():
    assert kraken_client_order_id("manual-1") == "manual-1"
    assert our_client_order_id("manual-1") == "manual-1"
    assert our_client_order_id(None) is None
    assert our_client_order_id("") is None
    with pytest.raises(ValueError, match="fits none of Kraken's cl_ord_id formats"):
        kraken_client_order_id("a-client-id-longer-than-18")
    with pytest.raises(ValueError, match="cl_ord_id"):
        kraken_client_order_id("has space")


def test_order_id_prefixes_when_compared_with_services_then_the_same():
    from apps.trading.services.common import KILL_ORDER_PREFIX, new_client_order_id

    assert KILL_ORDER_ID_PREFIX == KILL_ORDER_PREFIX
    ours = new_client_order_id()
    assert ours.startswith(ORDER_ID_PREFIX)
    assert our_client_order_id(kraken_client_order_id(ours)) == ours


def test_symbol_map_when_kraken_aliases_then_mapped_through_ccxt_codes():
    # Arrange: ccxt's own currency table, offline (XBT/XXBT -> BTC, ZUSD -> USD).
    symbols = SymbolMap(["XBT-USD", "ETH-BTC"], ccxt.kraken().safe_currency_code)
    # Act / Assert
    assert symbols.to_ccxt("XBT", "USD") == "BTC/USD"
    assert symbols.to_ccxt("XXBT", "ZUSD") == "BTC/USD"
    assert symbols.to_ours("BTC/USD") == "XBT-USD"  # our configured spelling wins
    assert symbols.to_ours("ETH/BTC") == "ETH-BTC"
    assert symbols.to_ours("SOL/EUR") == "SOL-EUR"  # not configured: BASE-QUOTE
    assert symbols.currency("BTC") == "XBT"
    assert symbols.currency("EUR") == "EUR"
    assert symbols.base_code("XBT-USD") == "BTC"


def test_split_symbol_when_not_base_quote_then_value_error():
    assert split_symbol("btc-usd") == ("BTC", "USD")
    assert split_symbol("ETH/BTC") == ("ETH", "BTC")
    for bad in ("AAPL", "A-B-C", "-USD", "BTC-"):
        with pytest.raises(ValueError, match="BASE-QUOTE"):
            split_symbol(bad)


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("pending", "0", OrderStatus.ACCEPTED),
        ("open", "0", OrderStatus.ACCEPTED),
        ("open", "0.2", OrderStatus.PARTIALLY_FILLED),
        ("closed", "1", OrderStatus.FILLED),
        ("closed", "0.4", OrderStatus.CANCELED),
        ("canceled", "0", OrderStatus.CANCELED),
        ("canceled", "0.3", OrderStatus.CANCELED),
        ("expired", "0", OrderStatus.EXPIRED),
    ],
)
def test_order_status_from_kraken_when_status_then_our_status(status, filled, expected):
    assert order_status_from_kraken(status, D(filled), D("1")) is expected


def test_order_status_from_kraken_when_unknown_status_then_value_error():
    with pytest.raises(ValueError, match="unknown Kraken order status 'weird'"):
        order_status_from_kraken("weird", D(0), D(1))


def test_kraken_errors_when_ccxt_message_then_kraken_strings_and_codes():
    message = 'kraken {"error":["EOrder:Insufficient funds"],"result":{}}'
    assert kraken_errors(message) == ["EOrder:Insufficient funds"]
    assert kraken_errors("kraken cancelOrder() error {bad json EOrder:Unknown order") == [
        "EOrder:Unknown order"
    ]
    assert kraken_errors("kraken GET http://x 502 Bad Gateway <html>") == []
    assert error_code("EGeneral:Invalid arguments:volume") == "EGeneral:Invalid arguments"
    assert error_code("EOrder:Insufficient funds") == "EOrder:Insufficient funds"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_key": ""}, "api_key and api_secret are required"),
        ({"api_secret": "not base64!"}, "api_secret is not base64"),
        ({"dead_man_refresh_seconds": 10}, "within 15-30"),
        ({"dead_man_refresh_seconds": 31}, "within 15-30"),
        ({"dead_man_timeout_seconds": 20}, "must exceed dead_man_refresh_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds must be > 0"),
        ({"instruments": ["AAPL"]}, "not of the form BASE-QUOTE"),
        ({"api_url": "http://kraken.example.com"}, "must be https://HOST"),
        ({"api_url": "api.kraken.com"}, "must be https://HOST"),
    ],
)
def test_kraken_venue_when_bad_configuration_then_configuration_error(overrides, message):
    kwargs = {
        "api_key": "k",
        "api_secret": base64.b64encode(b"s" * 64).decode(),
        "api_url": "http://127.0.0.1:9",
        "instruments": ["BTC-USD"],
    }
    kwargs.update(overrides)
    with pytest.raises(VenueConfigurationError, match=message):
        KrakenVenue(**kwargs)


# -- session ----------------------------------------------------------------------


def test_connect_when_fake_up_then_connected_markets_loaded_and_key_proved(kraken_fake):
    venue = kraken_venue_for(kraken_fake)
    assert venue.connection_state() is ConnectionState.DISCONNECTED

    venue.connect()

    assert venue.connection_state() is ConnectionState.CONNECTED
    endpoints = [c.endpoint for c in kraken_fake.calls]
    assert endpoints[:4] == ["Assets", "AssetPairs", "BalanceEx", "CancelAllOrdersAfter"]
    venue.close()
    assert venue.connection_state() is ConnectionState.DISCONNECTED


def test_connect_when_instrument_not_on_kraken_then_configuration_error(kraken_fake):
    venue = kraken_venue_for(kraken_fake, instruments=["BTC-USD", "DOGE-EUR"])
    with pytest.raises(VenueConfigurationError, match="no Kraken market for instrument.*DOGE-EUR"):
        venue.connect()
    assert venue.connection_state() is ConnectionState.DISCONNECTED


def test_connect_when_connection_refused_then_disconnected_and_temporary_error():
    # Arrange: a port that nothing listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    venue = KrakenVenue(
        api_key="k",
        api_secret=base64.b64encode(b"s" * 64).decode(),
        api_url=f"http://127.0.0.1:{port}",
        timeout_seconds=2,
        rate_limit=False,
    )
    # Act / Assert
    with pytest.raises(VenueTemporaryError, match="kraken load markets"):
        venue.connect()
    assert venue.connection_state() is ConnectionState.DISCONNECTED


def test_connect_when_wrong_secret_then_fake_refuses_signature_and_configuration_error(
    kraken_fake,
):
    venue = kraken_venue_for(kraken_fake, api_secret=base64.b64encode(b"x" * 64).decode())
    with pytest.raises(VenueConfigurationError, match="EAPI:Invalid signature"):
        venue.connect()
    assert venue.connection_state() is ConnectionState.DISCONNECTED
    assert kraken_fake.calls_to("CancelAllOrdersAfter") == []


def test_connect_when_unknown_key_then_configuration_error_with_krakens_reason(kraken_fake):
    venue = kraken_venue_for(kraken_fake, api_key="someone-else")
    with pytest.raises(VenueConfigurationError, match="EAPI:Invalid key"):
        venue.connect()


def test_fake_when_signed_by_hand_then_checks_signature_and_strictly_increasing_nonce(
    kraken_fake,
):
    # Kraken's algorithm, written out independently of ccxt.
    def post(nonce: int, body_extra: str = "", tamper: bool = False) -> dict:
        path = "/0/private/Balance"
        data = urlencode({"nonce": str(nonce)})
        message = path.encode() + hashlib.sha256((str(nonce) + data).encode()).digest()
        sign = base64.b64encode(
            hmac.new(base64.b64decode(kraken_fake.api_secret), message, hashlib.sha512).digest()
        ).decode()
        sent = data + (body_extra if tamper else "")
        return requests.post(
            kraken_fake.url + path,
            data=sent,
            headers={"API-Key": kraken_fake.api_key, "API-Sign": sign},
            timeout=5,
        ).json()

    assert post(1000)["error"] == []
    assert post(1000) == {"error": ["EAPI:Invalid nonce"], "result": {}}  # a replay
    assert post(999)["error"] == ["EAPI:Invalid nonce"]
    assert post(1001, "&asset=XXBT", tamper=True)["error"] == ["EAPI:Invalid signature"]
    assert post(1001)["error"] == []  # the tampered call did not consume the nonce


def test_request_when_nonce_goes_backwards_then_temporary_error_with_krakens_reason(
    kraken_venue, kraken_fake
):
    # Arrange: a second client of the same key already used a higher nonce.
    kraken_venue._exchange.options["lastNonce"] = 0
    kraken_venue._exchange.nonce = lambda: 1
    # Act / Assert
    with pytest.raises(VenueTemporaryError, match="EAPI:Invalid nonce"):
        kraken_venue.balances()
    assert kraken_venue.connection_state() is ConnectionState.CONNECTED


# -- orders -----------------------------------------------------------------------


def test_submit_when_limit_order_then_kraken_holds_it_under_our_client_id(
    kraken_venue, kraken_fake
):
    order = an_order()

    ack = kraken_venue.submit(order)

    [held] = kraken_fake.orders_by_cl_ord_id(kraken_client_order_id(order.client_order_id))
    assert held["txid"] == ack.broker_order_id
    assert held["status"] == "open"
    [call] = kraken_fake.calls_to("AddOrder")
    assert call.params["pair"] == "XXBTZUSD"
    assert call.params["type"] == "buy"
    assert call.params["ordertype"] == "limit"
    assert D(call.params["volume"]) == D("0.5")
    assert D(call.params["price"]) == D("20000")
    assert "reduce_only" not in call.params


def test_submit_when_market_sell_reduce_only_then_sent_without_price_or_reduce_only(
    kraken_venue, kraken_fake
):
    order = an_order(side=Side.SELL, order_type=OrderType.MARKET, quantity="1.5", reduce_only=True)

    ack = kraken_venue.submit(order)

    [call] = kraken_fake.calls_to("AddOrder")
    assert call.params["ordertype"] == "market"
    assert "price" not in call.params
    assert "reduce_only" not in call.params  # spot: Kraken honours it on margin orders only
    assert kraken_fake.order(ack.broker_order_id)["descr"]["type"] == "sell"


def test_submit_when_quantity_finer_than_kraken_lot_then_rejected_and_nothing_sent(
    kraken_venue, kraken_fake
):
    with pytest.raises(VenueRejected, match="quantity 0.123456789 has more decimals") as exc:
        kraken_venue.submit(an_order(quantity="0.123456789"))
    assert exc.value.code == "precision"
    with pytest.raises(VenueRejected, match="limit price 20000.05 has more decimals"):
        kraken_venue.submit(an_order(price="20000.05"))
    assert kraken_fake.add_order_calls == 0


@pytest.mark.parametrize("quantity", ["0", "-0.5"])
def test_submit_when_quantity_not_positive_then_rejected_and_nothing_sent(
    kraken_venue, kraken_fake, quantity
):
    with pytest.raises(VenueRejected, match="quantity must be > 0") as exc:
        kraken_venue.submit(an_order(quantity=quantity))
    assert exc.value.code == "quantity"
    assert kraken_fake.add_order_calls == 0


def test_submit_when_instrument_has_no_kraken_market_then_rejected_and_nothing_sent(
    kraken_venue, kraken_fake
):
    with pytest.raises(VenueRejected, match="no Kraken market for DOGE-USD") as exc:
        kraken_venue.submit(an_order(instrument="DOGE-USD"))
    assert exc.value.code == "unknown_instrument"
    assert kraken_fake.add_order_calls == 0


def test_submit_when_kraken_refuses_for_funds_or_minimum_then_rejected_with_krakens_reason(
    kraken_venue, kraken_fake
):
    with pytest.raises(VenueRejected, match="EOrder:Insufficient funds") as funds:
        kraken_venue.submit(an_order(quantity="10", price="20000.0"))  # 200,000 USD
    with pytest.raises(VenueRejected, match="EOrder:Order minimum not met") as minimum:
        kraken_venue.submit(an_order(quantity="0.00001", price="60000.0"))
    assert funds.value.code == "EOrder:Insufficient funds"
    assert minimum.value.code == "EOrder:Order minimum not met"
    assert kraken_fake.open_orders() == []


def test_order_status_when_ack_lost_then_found_by_our_client_id(kraken_venue, kraken_fake):
    # Arrange: Kraken places the order, then the connection drops before the answer.
    kraken_fake.disconnect_next("AddOrder", after=True)
    order = an_order()
    with pytest.raises(VenueTemporaryError):
        kraken_venue.submit(order)
    # Act: we never learnt the txid.
    status = kraken_venue.order_status(order)
    # Assert
    [held] = kraken_fake.open_orders()
    assert status is not None
    assert status.broker_order_id == held["txid"]
    assert status.client_order_id == order.client_order_id
    assert status.status is OrderStatus.ACCEPTED
    assert status.instrument == "BTC-USD"
    assert (status.side, status.order_type) == (Side.BUY, OrderType.LIMIT)
    assert (status.quantity, status.filled_quantity, status.limit_price) == (
        D("0.5"),
        D(0),
        D("20000"),
    )
    assert kraken_fake.add_order_calls == 1


def test_order_status_when_request_never_reached_kraken_then_none(kraken_venue, kraken_fake):
    kraken_fake.disconnect_next("AddOrder")  # dropped before Kraken processed it
    order = an_order()
    with pytest.raises(VenueTemporaryError):
        kraken_venue.submit(order)

    assert kraken_venue.order_status(order) is None
    assert kraken_fake.open_orders() == []


def test_order_status_when_answer_held_until_timeout_then_temporary_and_order_found(
    kraken_fake,
):
    # Arrange: Kraken records the order and never answers (the crash-between-send-and-ack case).
    venue = kraken_venue_for(kraken_fake, timeout_seconds=0.5)
    venue.connect()
    hold = kraken_fake.hold_next("AddOrder")
    order = an_order()
    # Act
    with pytest.raises(VenueTemporaryError, match="AddOrder"):
        venue.submit(order)
    # Assert
    assert hold.arrived.is_set()
    assert venue.connection_state() is ConnectionState.DISCONNECTED
    status = venue.order_status(order)
    assert status is not None
    assert status.status is OrderStatus.ACCEPTED
    hold.release()
    venue.close()


def test_order_status_when_filled_then_found_among_closed_orders_with_average_price(
    kraken_venue, kraken_fake
):
    order = an_order(quantity="0.5", price="20000.0")
    ack = kraken_venue.submit(order)
    kraken_fake.fill(ack.broker_order_id, quantity="0.2", price="19990.0")
    kraken_fake.fill(ack.broker_order_id, price="20000.0")

    status = kraken_venue.order_status(order)  # no txid: by client id only

    assert status is not None
    assert status.broker_order_id == ack.broker_order_id
    assert status.status is OrderStatus.FILLED
    assert status.filled_quantity == D("0.5")
    assert status.avg_fill_price == D("19996.0")


def test_order_status_when_partially_filled_then_partially_filled(kraken_venue, kraken_fake):
    order = an_order()
    ack = kraken_venue.submit(order)
    kraken_fake.fill(ack.broker_order_id, quantity="0.1")

    status = kraken_venue.order_status(acked(order, ack.broker_order_id))

    assert status is not None
    assert status.status is OrderStatus.PARTIALLY_FILLED
    assert status.filled_quantity == D("0.1")


def test_order_status_when_kraken_does_not_know_the_txid_then_none(kraken_venue):
    order = acked(an_order(client_order_id="manual-9"), "OAAAAA-BBBBB-CCCCCC")
    assert kraken_venue.order_status(order) is None


def test_order_status_when_only_txid_matches_then_found_by_query_orders(kraken_venue, kraken_fake):
    txid = kraken_fake.add_foreign_order(pair="XBTUSD", volume="0.01", price="10000")
    order = acked(an_order(client_order_id="not-this-one"), txid)

    status = kraken_venue.order_status(order)

    assert status is not None
    assert status.broker_order_id == txid
    assert status.client_order_id is None
    assert "QueryOrders" in [c.endpoint for c in kraken_fake.calls]


def test_submit_when_client_id_reused_then_kraken_only_refuses_while_first_is_open(
    kraken_venue, kraken_fake
):
    # Kraken checks cl_ord_id among OPEN orders only: our database is what stops a resend.
    order = an_order()
    first = kraken_venue.submit(order)
    with pytest.raises(VenueRejected, match="EOrder:Duplicate order") as duplicate:
        kraken_venue.submit(order)
    assert duplicate.value.code == "EOrder:Duplicate order"

    kraken_venue.cancel(acked(order, first.broker_order_id))
    second = kraken_venue.submit(order)  # accepted: a second live order under the same id

    held = kraken_fake.orders_by_cl_ord_id(kraken_client_order_id(order.client_order_id))
    assert [o["txid"] for o in held] == [first.broker_order_id, second.broker_order_id]
    status = kraken_venue.order_status(order)
    assert status is not None
    assert status.broker_order_id == second.broker_order_id
    first_status = kraken_venue.order_status(acked(order, first.broker_order_id))
    assert first_status is not None
    assert first_status.status is OrderStatus.CANCELED


def test_cancel_when_txid_known_then_canceled_at_kraken_with_reason(kraken_venue, kraken_fake):
    order = an_order()
    ack = kraken_venue.submit(order)

    kraken_venue.cancel(acked(order, ack.broker_order_id))

    assert kraken_fake.order(ack.broker_order_id)["status"] == "canceled"
    [call] = kraken_fake.calls_to("CancelOrder")
    assert call.params["txid"] == ack.broker_order_id
    status = kraken_venue.order_status(acked(order, ack.broker_order_id))
    assert status is not None
    assert (status.status, status.reason) == (OrderStatus.CANCELED, "User requested")


def test_cancel_when_ack_never_came_then_canceled_by_client_id(kraken_venue, kraken_fake):
    kraken_fake.disconnect_next("AddOrder", after=True)
    order = an_order()
    with pytest.raises(VenueTemporaryError):
        kraken_venue.submit(order)

    kraken_venue.cancel(order)

    [call] = kraken_fake.calls_to("CancelOrder")
    assert call.params["cl_ord_id"] == kraken_client_order_id(order.client_order_id)
    assert "txid" not in call.params
    assert kraken_fake.open_orders() == []


def test_cancel_when_order_not_open_then_rejected_with_unknown_order(kraken_venue, kraken_fake):
    order = an_order()
    ack = kraken_venue.submit(order)
    kraken_fake.fill(ack.broker_order_id)

    with pytest.raises(VenueRejected, match="EOrder:Unknown order") as exc:
        kraken_venue.cancel(acked(order, ack.broker_order_id))
    assert exc.value.code == "EOrder:Unknown order"


def test_cancel_all_when_orders_open_then_krakens_mass_cancel_and_count(kraken_venue, kraken_fake):
    for _ in range(2):
        kraken_venue.submit(an_order(quantity="0.1"))
    kraken_fake.add_foreign_order()

    cancelled = kraken_venue.cancel_all()

    assert cancelled == 3
    assert kraken_fake.open_orders() == []
    assert len(kraken_fake.calls_to("CancelAll")) == 1


def test_open_orders_when_ours_and_foreign_then_both_with_client_ids(kraken_venue, kraken_fake):
    order = an_order(instrument="ETH-BTC", quantity="1", price="0.05")
    ack = kraken_venue.submit(order)
    foreign = kraken_fake.add_foreign_order(pair="ETHUSD", side="sell", volume="2", price="3000")

    orders = {o.broker_order_id: o for o in kraken_venue.open_orders()}

    assert orders[ack.broker_order_id].client_order_id == order.client_order_id
    assert orders[ack.broker_order_id].instrument == "ETH-BTC"
    assert orders[ack.broker_order_id].limit_price == D("0.05")
    assert orders[foreign].client_order_id is None
    assert (orders[foreign].instrument, orders[foreign].side) == ("ETH-USD", Side.SELL)


def test_cancel_behind_our_back_when_status_queried_then_canceled_with_krakens_reason(
    kraken_venue, kraken_fake
):
    order = an_order()
    ack = kraken_venue.submit(order)
    kraken_fake.cancel_behind_back(ack.broker_order_id, reason="Cancelled by support")

    status = kraken_venue.order_status(order)

    assert status is not None
    assert (status.status, status.reason) == (OrderStatus.CANCELED, "Cancelled by support")


# -- dead-man switch --------------------------------------------------------------


def test_dead_man_when_connected_then_armed_refreshed_when_due_and_disarmed_on_close(
    kraken_fake,
):
    now = [1000.0]
    venue = kraken_venue_for(kraken_fake, clock=lambda: now[0], dead_man_refresh_seconds=20)

    venue.connect()
    assert kraken_fake.dead_man_timeouts == [60]
    assert kraken_fake.dead_man_armed
    assert venue.dead_man_armed

    now[0] += 19
    venue.heartbeat()  # not due: a public Time call proves the session
    assert kraken_fake.dead_man_timeouts == [60]
    assert kraken_fake.calls[-1].endpoint == "Time"

    now[0] += 1
    venue.heartbeat()  # 20 s since the last refresh: refreshed
    assert kraken_fake.dead_man_timeouts == [60, 60]

    now[0] += 5
    venue.heartbeat()
    assert kraken_fake.dead_man_timeouts == [60, 60]

    venue.close()
    assert kraken_fake.dead_man_timeouts == [60, 60, 0]
    assert not kraken_fake.dead_man_armed
    assert not venue.dead_man_armed


def test_dead_man_when_it_expires_then_kraken_cancels_every_open_order():
    # Arrange: one fake second lasts 10 ms, so the 60 s timer fires after 0.6 s.
    with KrakenFake(balances=BALANCES, time_scale=0.01) as fake:
        venue = kraken_venue_for(fake)
        venue.connect()
        order = an_order()
        venue.submit(order)
        fake.add_foreign_order()
        # Act: no heartbeat comes (the process hung or lost the network).
        assert wait_for(lambda: fake.dead_man_fired == 1)
        # Assert
        assert fake.open_orders() == []
        assert not fake.dead_man_armed
        status = venue.order_status(order)
        assert status is not None
        assert (status.status, status.reason) == (OrderStatus.CANCELED, "Dead man's switch")


def test_dead_man_when_disabled_then_neither_armed_nor_disarmed(kraken_fake):
    venue = kraken_venue_for(kraken_fake, dead_man_timeout_seconds=0)
    venue.connect()
    venue.heartbeat()
    venue.close()
    assert kraken_fake.dead_man_timeouts == []


def test_heartbeat_when_refresh_fails_then_temporary_error_and_retried_next_time(kraken_fake):
    now = [0.0]
    venue = kraken_venue_for(kraken_fake, clock=lambda: now[0])
    venue.connect()
    now[0] += 20
    kraken_fake.fail_next("CancelAllOrdersAfter", "EService:Unavailable")

    with pytest.raises(VenueTemporaryError, match="EService:Unavailable"):
        venue.heartbeat()
    assert venue.connection_state() is ConnectionState.DISCONNECTED

    venue.heartbeat()  # reconnects, which re-arms the switch
    assert venue.connection_state() is ConnectionState.CONNECTED
    assert kraken_fake.dead_man_timeouts == [60, 60]
    venue.close()


# -- fills, positions, balances ---------------------------------------------------


def test_fills_since_when_partial_and_full_fills_then_each_trade_with_fee_and_our_id(
    kraken_venue, kraken_fake
):
    order = an_order(quantity="0.5", price="20000.0")
    ack = kraken_venue.submit(order)
    before = datetime.now(UTC) - timedelta(seconds=1)
    t1 = kraken_fake.fill(ack.broker_order_id, quantity="0.2", fee="1.5")
    t2 = kraken_fake.fill(ack.broker_order_id, price="19999.9")  # default fee: 0.4% taker

    fills = kraken_venue.fills_since(before)

    assert [f.trade_id for f in fills] == [t1, t2]
    first, second = fills
    assert (first.quantity, first.price, first.fee) == (D("0.2"), D("20000.0"), D("1.5"))
    assert (second.quantity, second.price) == (D("0.3"), D("19999.9"))
    assert second.fee == D("23.99988")  # 0.3 * 19999.9 * 0.004, at Kraken's 5 decimals
    for fill in fills:
        assert fill.client_order_id == order.client_order_id
        assert fill.broker_order_id == ack.broker_order_id
        assert (fill.instrument, fill.side) == ("BTC-USD", Side.BUY)
        assert fill.ts.tzinfo is not None
        assert fill.ts >= before
    assert first.to_fill(order.client_order_id).trade_id == t1


def test_fills_since_when_older_trades_exist_then_only_those_at_or_after_since(
    kraken_venue, kraken_fake
):
    order = an_order(quantity="0.5")
    ack = kraken_venue.submit(order)
    cutoff = datetime.now(UTC)
    kraken_fake.fill(ack.broker_order_id, quantity="0.1", at=cutoff.timestamp() - 3600)
    kraken_fake.fill(ack.broker_order_id, quantity="0.1", at=cutoff.timestamp() - 0.5)
    recent = kraken_fake.fill(ack.broker_order_id, quantity="0.1", at=cutoff.timestamp())

    fills = kraken_venue.fills_since(cutoff)

    assert [f.trade_id for f in fills] == [recent]


def test_fills_since_when_more_than_a_page_then_every_page_read(kraken_venue, kraken_fake):
    order = an_order(quantity="1.2", price="20000.0")
    ack = kraken_venue.submit(order)
    start = datetime.now(UTC) - timedelta(seconds=1)
    trade_ids = {kraken_fake.fill(ack.broker_order_id, quantity="0.01") for _ in range(120)}

    fills = kraken_venue.fills_since(start)

    assert {f.trade_id for f in fills} == trade_ids
    assert len(kraken_fake.calls_to("TradesHistory")) == 3  # 50 + 50 + 20


def test_fills_since_when_order_foreign_or_forgotten_then_no_client_id(kraken_venue, kraken_fake):
    start = datetime.now(UTC) - timedelta(seconds=1)
    foreign = kraken_fake.add_foreign_order(volume="0.01")
    lost = kraken_fake.add_foreign_order(volume="0.01", cl_ord_id="lost-1")
    kraken_fake.fill(foreign)
    kraken_fake.fill(lost)
    kraken_fake.drop_order(lost)

    fills = {f.broker_order_id: f for f in kraken_venue.fills_since(start)}

    assert fills[foreign].client_order_id is None
    assert fills[lost].client_order_id is None


def test_fills_since_when_naive_datetime_then_value_error(kraken_venue):
    with pytest.raises(ValueError, match="timezone-aware"):
        kraken_venue.fills_since(datetime(2024, 1, 1))


def test_positions_when_coins_held_then_signed_base_balances_of_our_instruments(
    kraken_venue, kraken_fake
):
    assert kraken_venue.positions() == [
        BrokerPosition(instrument="BTC-USD", quantity=D("2")),
        BrokerPosition(instrument="ETH-USD", quantity=D("10")),  # ETH-BTC shares the coin
    ]
    kraken_fake.set_balance("XXBT", "0")  # sold behind our back

    assert kraken_venue.positions() == [BrokerPosition(instrument="ETH-USD", quantity=D("10"))]


def test_balances_when_an_order_holds_funds_then_total_and_available(kraken_venue, kraken_fake):
    kraken_venue.submit(an_order(quantity="0.5", price="20000.0"))  # holds 10,000 USD

    balances = {b.currency: b for b in kraken_venue.balances()}

    assert balances["USD"] == BrokerBalance(currency="USD", total=D("100000"), available=D("90000"))
    assert balances["BTC"] == BrokerBalance(currency="BTC", total=D("2"), available=D("2"))
    assert balances["ETH"].total == D("10")


def test_balances_when_instruments_spell_xbt_then_reported_as_xbt(kraken_fake):
    venue = kraken_venue_for(kraken_fake, instruments=["XBT-USD"], dead_man_timeout_seconds=0)
    venue.connect()

    assert {b.currency for b in venue.balances()} == {"XBT", "ETH", "USD"}
    assert venue.positions() == [BrokerPosition(instrument="XBT-USD", quantity=D("2"))]
    ack = venue.submit(an_order(instrument="XBT-USD"))
    assert kraken_fake.order(ack.broker_order_id)["descr"]["pair"] == "XBTUSD"
    assert [o.instrument for o in venue.open_orders()] == ["XBT-USD"]


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        ("EOrder:Insufficient funds", VenueRejected, "EOrder:Insufficient funds"),
        (
            "EOrder:Invalid price:XBTUSD price can only be specified up to 1 decimals.",
            VenueRejected,
            "EOrder:Invalid price",
        ),
        ("EOrder:Order minimum not met", VenueRejected, "EOrder:Order minimum not met"),
        ("EOrder:Unknown position", VenueRejected, "EOrder:Unknown position"),
        ("EGeneral:Invalid arguments", VenueRejected, "EGeneral:Invalid arguments"),
        ("EGeneral:Invalid arguments:volume", VenueRejected, "EGeneral:Invalid arguments"),
        ("EQuery:Unknown asset pair", VenueRejected, "EQuery:Unknown asset pair"),
        ("EAPI:Rate limit exceeded", VenueTemporaryError, None),
        ("EOrder:Rate limit exceeded", VenueTemporaryError, None),
        ("EGeneral:Temporary lockout", VenueTemporaryError, None),
        ("EService:Unavailable", VenueTemporaryError, None),
        ("EService:Busy", VenueTemporaryError, None),
        ("EGeneral:Internal error", VenueTemporaryError, None),
        ("EAPI:Invalid key", VenueConfigurationError, None),
        ("EAPI:Invalid signature", VenueConfigurationError, None),
        ("EGeneral:Permission denied", VenueConfigurationError, None),
    ],
)
def test_submit_when_kraken_answers_error_then_mapped_with_krakens_message(
    kraken_venue, kraken_fake, error, expected, code
):
    kraken_fake.fail_next("AddOrder", error)

    with pytest.raises(expected) as exc:
        kraken_venue.submit(an_order())

    assert error in str(exc.value)
    assert type(exc.value) is expected
    if code is not None:
        assert exc.value.code == code
    assert kraken_fake.open_orders() == []


def test_request_when_rate_limited_then_temporary_and_next_call_works(kraken_venue, kraken_fake):
    kraken_fake.rate_limit_next("OpenOrders")

    with pytest.raises(VenueTemporaryError, match="EAPI:Rate limit exceeded"):
        kraken_venue.open_orders()

    assert kraken_venue.connection_state() is ConnectionState.CONNECTED  # alive, only throttled
    assert kraken_venue.open_orders() == []


def test_request_when_http_502_then_temporary_disconnected_and_heartbeat_reconnects(
    kraken_venue, kraken_fake
):
    kraken_fake.http_error_next("OpenOrders", status=502)

    with pytest.raises(VenueTemporaryError, match="502"):
        kraken_venue.open_orders()
    assert kraken_venue.connection_state() is ConnectionState.DISCONNECTED

    kraken_venue.heartbeat()
    assert kraken_venue.connection_state() is ConnectionState.CONNECTED


def test_request_when_http_503_with_kraken_envelope_then_temporary_with_reason(
    kraken_venue, kraken_fake
):
    kraken_fake.http_error_next(
        "BalanceEx", status=503, body='{"error":["EService:Unavailable"],"result":{}}'
    )
    with pytest.raises(VenueTemporaryError, match="EService:Unavailable"):
        kraken_venue.balances()


@pytest.mark.parametrize(
    ("endpoint", "body", "call"),
    [
        ("OpenOrders", '{"error": [], "result": {"open": ', "open_orders"),
        ("OpenOrders", '{"error": []}', "open_orders"),
        ("OpenOrders", "<html>maintenance</html>", "open_orders"),
        ("OpenOrders", "", "open_orders"),
        ("OpenOrders", '{"error":[],"result":{"open":{"OABCDE-FGHIJ-KLMNOP":{}}}}', "open_orders"),
        (
            "OpenOrders",
            '{"error":[],"result":{"open":{"OABCDE-FGHIJ-KLMNOP":{"status":"open",'
            '"descr":{"pair":"XBTUSD","type":"buy","ordertype":"limit","price":"1"},'
            '"vol":"lots","vol_exec":"0"}}}}',
            "open_orders",
        ),
        ("AddOrder", '{"error":[],"result":{"descr":{"order":"buy"}}}', "submit"),
        ("BalanceEx", '{"error":[],"result":{"ZUSD":"12"}}', "balances"),
        ("TradesHistory", '{"error":[],"result":{"trades":[]}}', "fills"),
        ("CancelAll", '{"error":[],"result":{}}', "cancel_all"),
    ],
)
def test_request_when_response_malformed_then_counted_and_temporary_error(
    kraken_venue, kraken_fake, endpoint, body, call
):
    # Arrange
    kraken_fake.malformed_next(endpoint, body)
    before = malformed_count()
    calls = {
        "open_orders": kraken_venue.open_orders,
        "submit": lambda: kraken_venue.submit(an_order()),
        "balances": kraken_venue.balances,
        "fills": lambda: kraken_venue.fills_since(datetime.now(UTC)),
        "cancel_all": kraken_venue.cancel_all,
    }
    # Act
    with pytest.raises(VenueTemporaryError, match="malformed response"):
        calls[call]()
    # Assert: counted once, and the venue goes on working.
    assert malformed_count() == before + 1
    assert kraken_venue.open_orders() is not None


def test_request_when_read_times_out_then_temporary_and_disconnected(kraken_fake):
    venue = kraken_venue_for(kraken_fake, timeout_seconds=0.3)
    venue.connect()
    kraken_fake.hold_next("BalanceEx", delay=2)

    with pytest.raises(VenueTemporaryError, match="BalanceEx"):
        venue.balances()

    assert venue.connection_state() is ConnectionState.DISCONNECTED


def test_fake_when_used_as_context_manager_then_port_freed_on_exit():
    with KrakenFake() as fake:
        url = fake.url
        assert requests.get(url + "/0/public/Time", timeout=5).json()["error"] == []
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/0/public/Time", timeout=2)


def test_kraken_venue_when_no_api_url_then_real_kraken_endpoints():
    venue = KrakenVenue(api_key="k", api_secret=base64.b64encode(b"s" * 64).decode())
    assert venue._exchange.urls["api"]["private"] == "https://api.kraken.com"
    assert venue._exchange.urls["api"]["public"] == "https://api.kraken.com"
    assert venue._exchange.enableRateLimit is True
    assert venue.name == "kraken"
    assert venue.cancel_is_immediate is False
