from decimal import Decimal

from apps.brokers.domain.reconcile import (
    DiscrepancyKind,
    OurOrder,
    compare_cash,
    compare_orders,
    compare_positions,
)
from apps.model.orders import OrderStatus
from apps.model.values import OrderType, Side
from apps.model.venues import BrokerOrder

TOL = Decimal("1e-8")


def _ours(cid: str, bid: str | None = None, filled: str = "0") -> OurOrder:
    return OurOrder(cid, bid, "BTC-USD", OrderStatus.ACCEPTED, Decimal("1"), Decimal(filled))


def _theirs(bid: str, cid: str | None, filled: str = "0") -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=bid,
        client_order_id=cid,
        instrument="BTC-USD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal("1"),
        filled_quantity=Decimal(filled),
        status=OrderStatus.ACCEPTED,
    )


def test_compare_positions_when_equal_within_tolerance_then_nothing() -> None:
    assert (
        compare_positions(
            {"BTC-USD": Decimal("1.5")}, {"BTC-USD": Decimal("1.500000001")}, tolerance=TOL
        )
        == []
    )


def test_compare_positions_when_changed_behind_our_back_then_one_finding_with_both_figures() -> (
    None
):
    [f] = compare_positions({"BTC-USD": Decimal("1.5")}, {"BTC-USD": Decimal("2")}, tolerance=TOL)
    assert (f.kind, f.key, f.ours, f.broker) == (
        DiscrepancyKind.POSITION,
        "position:BTC-USD",
        "1.5",
        "2",
    )
    assert "difference 0.5" in f.detail


def test_compare_positions_when_only_the_broker_holds_it_then_reported_as_zero_here() -> None:
    [f] = compare_positions({}, {"ETH-USD": Decimal("-3")}, tolerance=TOL)
    assert (f.ours, f.broker) == ("0", "-3")


def test_compare_orders_when_matched_by_client_or_broker_id_then_clean() -> None:
    ours = [_ours("a"), _ours("b", "B-2")]
    theirs = [_theirs("B-1", "a"), _theirs("B-2", None)]
    assert compare_orders(ours, theirs, tolerance=TOL) == []


def test_compare_orders_when_broker_has_one_we_never_sent_then_unknown_order() -> None:
    [f] = compare_orders([], [_theirs("X-9", None)], tolerance=TOL)
    assert f.kind is DiscrepancyKind.UNKNOWN_ORDER
    assert f.key == "unknown_order:X-9"


def test_compare_orders_when_ours_is_gone_at_the_broker_then_missing_order() -> None:
    [f] = compare_orders([_ours("a", "B-1")], [], tolerance=TOL)
    assert f.kind is DiscrepancyKind.MISSING_ORDER
    assert f.key == "missing_order:a"


def test_compare_orders_when_filled_amounts_differ_then_filled_quantity_finding() -> None:
    [f] = compare_orders(
        [_ours("a", filled="0.2")], [_theirs("B-1", "a", filled="0.5")], tolerance=TOL
    )
    assert f.kind is DiscrepancyKind.ORDER_FILLED_QUANTITY
    assert (f.ours, f.broker) == ("0.2", "0.5")


def test_compare_cash_when_broker_unknown_or_equal_then_nothing_else_finding() -> None:
    assert compare_cash("USD", Decimal("10"), None, tolerance=Decimal("0.01")) == []
    assert compare_cash("USD", Decimal("10"), Decimal("10.005"), tolerance=Decimal("0.01")) == []
    [f] = compare_cash("USD", Decimal("10"), Decimal("9"), tolerance=Decimal("0.01"))
    assert f.key == "cash:USD"
    assert f.broker == "9"
