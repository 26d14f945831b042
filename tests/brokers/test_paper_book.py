"""The paper broker keeps its own book: reconciliation against it compares two books.

Trading goes through the product's path (decision -> ``order_send`` -> the paper venue ->
``match`` on the next bar -> ``fill_apply``); reconciliation runs as the scheduled task
runs it (``apps.brokers.tasks.reconcile``) or as ``manage.py reconcile`` does. Then one
row is doctored, on our side or in the paper book, and the run must find it, record it
and pause trading, as it would at a real broker.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command

from apps.accounts.models import Account
from apps.brokers.models import Discrepancy, DiscrepancyStatus, ReconciliationOutcome
from apps.brokers.tasks import reconcile as reconcile_task
from apps.model.bars import Bar
from apps.model.orders import OrderStatus
from apps.model.values import Side
from apps.model.venues import VenueRejected
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident
from apps.risk.services.modes import system_mode_get
from apps.strategies.domain.base import SignalAction
from apps.trading.models import (
    Fill,
    Order,
    PaperAccount,
    PaperClock,
    PaperFill,
    PaperOrder,
    PaperPosition,
    Position,
)
from apps.trading.services.fills import fill_apply
from apps.trading.services.kill_switch import kill_switch_engage
from apps.trading.services.orders import order_send
from apps.trading.venues.mapping import venue_order
from apps.trading.venues.paper import PaperVenue, paper_book_get_or_create
from tests.trading.factories import T0, instrument, paper_account
from tests.trading.services.test_decision_make import decide

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def _bar(ts, price: str = "100", volume: str = "1000", symbol: str = "BTC-USD") -> Bar:  # noqa: ANN001
    p = D(price)
    return Bar(symbol, ts, p, p + 1, p - 1, p, D(volume))


def _send(account: Account, action: SignalAction = SignalAction.ENTER_LONG) -> Order:
    """A decision on bar T0 sent to the paper broker as the execution worker sends it."""
    order = decide(account, action).order
    assert order is not None
    return order_send(order_id=order.pk)


def _match(account: Account, bar: Bar) -> list:
    """The engine's step 1: the bar's fills, booked by the paper broker, applied by us."""
    return [fill_apply(fill=f) for f in PaperVenue(account).match(bar)]


def _reconcile() -> None:
    assert reconcile_task() is not None  # the scheduled task, every account


def _clean(account: Account) -> None:
    _reconcile()
    assert system_mode_get() is SystemMode.NORMAL
    assert not Discrepancy.objects.filter(account=account).exists()


def _bought() -> tuple[Account, Order]:
    """A paper account that bought 10 on the bar after T0; a clean reconciliation after."""
    account = paper_account()
    instrument()
    filled = _send(account)
    assert len(_match(account, _bar(T0 + MINUTE, "101"))) == 1
    _clean(account)
    filled.refresh_from_db()
    return account, filled


def _traded() -> tuple[Account, Order, Order]:
    """``_bought`` with its exit, a sell of the 10, accepted and still working."""
    account, filled = _bought()
    working = _send(account, SignalAction.EXIT_LONG)
    _clean(account)
    return account, filled, working


def _open_keys(account: Account) -> set[str]:
    return set(
        Discrepancy.objects.filter(account=account, status=DiscrepancyStatus.OPEN).values_list(
            "key", flat=True
        )
    )


def _assert_found(account: Account, key: str) -> None:
    assert _open_keys(account) == {key}
    assert system_mode_get() is SystemMode.PAUSE
    assert Incident.objects.filter(title__contains=account.name).exists()


# --- the paper book is its own ---------------------------------------------------------------


def test_paper_book_when_trading_then_it_mirrors_our_books_from_its_own_tables() -> None:
    account, filled, working = _traded()

    book = PaperAccount.objects.get(account=account)
    ours = Account.objects.get(pk=account.pk)
    assert book.cash == ours.cash < D("10000")  # the fee was charged on both sides
    assert book.cash == D("10000") - filled.quantity * filled.avg_fill_price - filled.fees
    position = PaperPosition.objects.get(account=book)
    assert position.quantity == Position.objects.get(account=account).quantity == D(10)
    assert set(PaperFill.objects.values_list("trade_id", flat=True)) == set(
        Fill.objects.values_list("trade_id", flat=True)
    )
    assert PaperOrder.objects.get(client_order_id=working.client_order_id).side == "sell"
    assert PaperOrder.objects.get(client_order_id=working.client_order_id).status == "accepted"


def test_paper_venue_when_our_tables_are_wiped_then_it_still_reports_its_own_book() -> None:
    account, _, working = _traded()
    venue = PaperVenue(account)
    Position.objects.all().delete()
    Account.objects.filter(pk=account.pk).update(cash=D(0))

    assert [(p.instrument, p.quantity) for p in venue.positions()] == [("BTC-USD", D(10))]
    assert venue.balances()[0].total == PaperAccount.objects.get(account=account).cash > 0
    assert [o.client_order_id for o in venue.open_orders()] == [working.client_order_id]


def test_submit_when_resent_with_the_same_client_id_then_one_paper_order() -> None:
    account = paper_account()
    instrument()
    order = decide(account).order
    venue = PaperVenue(account)

    first = venue.submit(venue_order(order))
    again = venue.submit(venue_order(order))

    assert first == again
    assert PaperOrder.objects.filter(client_order_id=order.client_order_id).count() == 1


def test_submit_when_limit_order_has_no_price_then_rejected_and_nothing_recorded() -> None:
    account = paper_account()
    instrument()
    order = decide(account).order
    order.order_type = "limit"

    with pytest.raises(VenueRejected, match="needs a positive limit price"):
        PaperVenue(account).submit(venue_order(order))

    assert not PaperOrder.objects.exists()


def test_paper_book_when_engine_restarts_then_the_book_is_kept() -> None:
    account = paper_account()
    instrument()
    order = _send(account)

    # A new venue object (a restarted process) sees the order and fills it on the next bar.
    fills = PaperVenue(account).match(_bar(T0 + MINUTE))

    assert [f.client_order_id for f in fills] == [order.client_order_id]


def test_match_when_the_decision_bar_itself_arrives_then_no_fill_until_the_next_bar(
    settings,
) -> None:
    settings.PAPER_SLIPPAGE_BPS = D(5)
    account = paper_account()
    instrument()
    order = _send(account)
    venue = PaperVenue(account)

    assert venue.match(_bar(T0)) == []  # the bar the decision was made on
    (fill,) = venue.match(_bar(T0 + MINUTE, "105"))

    assert fill.price == D("105") * (1 + D(5) / D(10_000))  # next open + 5 bps slippage
    assert fill.trade_id == f"paper-{order.client_order_id}-{int((T0 + MINUTE).timestamp())}"


def test_match_when_the_same_bar_is_processed_twice_then_booked_once_and_same_fills() -> None:
    account = paper_account()
    instrument()
    _send(account)
    venue = PaperVenue(account)
    bar = _bar(T0 + MINUTE)
    first = venue.match(bar)
    cash = PaperAccount.objects.get(account=account).cash

    again = venue.match(bar)

    assert [f.trade_id for f in again] == [f.trade_id for f in first]
    assert PaperFill.objects.count() == 1
    assert PaperAccount.objects.get(account=account).cash == cash
    assert PaperPosition.objects.get().quantity == first[0].quantity


def test_match_when_nothing_works_then_one_statement_and_nothing_locked_or_written(
    django_assert_num_queries,
) -> None:
    account = paper_account()
    instrument()
    paper_book_get_or_create(account)
    venue = PaperVenue(account)

    with django_assert_num_queries(1):  # no lock, no clock: most bars hold
        assert venue.match(_bar(T0 + MINUTE)) == []

    assert not PaperClock.objects.exists()


def test_match_when_an_order_is_placed_after_an_idle_bar_then_that_bar_replayed_fills_nothing() -> (
    None
):
    account = paper_account()
    instrument()
    venue = PaperVenue(account)
    idle = _bar(T0)
    assert venue.match(idle) == []  # nothing working: the clock stays where it was
    _send(account)  # decided on T0: eligible from the bar after it

    assert venue.match(idle) == []  # the idle bar again: still nothing to fill on it
    (fill,) = venue.match(_bar(T0 + MINUTE))
    assert PaperClock.objects.get().last_bar_ts == T0 + MINUTE
    assert [f.trade_id for f in venue.match(_bar(T0 + MINUTE))] == [fill.trade_id]
    assert PaperFill.objects.count() == 1


def test_match_when_volume_caps_a_limit_order_then_replayed_bar_fills_nothing_more() -> None:
    account = paper_account()
    inst = instrument()
    order = decide(account).order
    Order.objects.filter(pk=order.pk).update(order_type="limit", limit_price=D("100"))
    order = order_send(order_id=order.pk)
    venue = PaperVenue(account)
    bar = _bar(T0 + MINUTE, "100", volume="20")  # 10% participation: 2 of the 10

    (first,) = venue.match(bar)
    (again,) = venue.match(bar)

    assert first.quantity == again.quantity == D(2)
    row = PaperOrder.objects.get(client_order_id=order.client_order_id)
    assert (row.status, row.filled_quantity) == ("partially_filled", D(2))
    assert inst.symbol == row.instrument


def test_cancel_when_filled_in_the_paper_book_then_refused_and_our_order_untouched() -> None:
    account = paper_account()
    instrument()
    order = _send(account)
    PaperVenue(account).match(_bar(T0 + MINUTE))  # the broker filled it; our side not yet

    with pytest.raises(VenueRejected, match="already filled"):
        PaperVenue(account).cancel(venue_order(order))


def test_kill_switch_when_paper_positions_then_closed_in_both_books() -> None:
    account, _, working = _traded()

    report = kill_switch_engage(actor="test", source="cli", reason="book test")

    assert report.flat
    assert PaperPosition.objects.get().quantity == 0
    assert PaperOrder.objects.get(client_order_id=working.client_order_id).status == "canceled"
    assert PaperAccount.objects.get(account=account).cash == Account.objects.get(pk=account.pk).cash


# --- doctoring our side ------------------------------------------------------------------------


def test_reconcile_when_our_position_is_doctored_then_found_and_paused() -> None:
    account, _, _ = _traded()
    Position.objects.filter(account=account).update(quantity=D(11))  # 1 added by hand

    _reconcile()

    _assert_found(account, "position:BTC-USD")
    row = Discrepancy.objects.get(key="position:BTC-USD")
    assert (row.ours, row.broker) == ("11", "10")


def test_reconcile_when_our_cash_is_doctored_then_found_and_paused() -> None:
    account, _, _ = _traded()
    Account.objects.filter(pk=account.pk).update(cash=account.cash + D(1000))

    _reconcile()

    _assert_found(account, "cash:USD")


def test_reconcile_when_a_working_order_is_marked_canceled_here_then_the_brokers_is_unknown() -> (
    None
):
    account, _, working = _traded()
    Order.objects.filter(pk=working.pk).update(status=OrderStatus.CANCELED.value)

    _reconcile()

    _assert_found(account, f"unknown_order:{working.broker_order_id}")


def test_reconcile_when_a_filled_order_is_reopened_here_then_missing_at_the_broker() -> None:
    account, filled = _bought()
    Order.objects.filter(pk=filled.pk).update(status=OrderStatus.ACCEPTED.value)

    _reconcile()

    _assert_found(account, f"missing_order:{filled.client_order_id}")


def test_reconcile_when_a_working_orders_filled_quantity_is_doctored_then_found() -> None:
    account, _, working = _traded()
    Order.objects.filter(pk=working.pk).update(
        filled_quantity=D(3), status=OrderStatus.PARTIALLY_FILLED.value
    )

    _reconcile()

    _assert_found(account, f"order_filled_quantity:{working.client_order_id}")


def test_reconcile_when_a_working_order_is_deleted_here_then_the_brokers_is_unknown() -> None:
    account, _, working = _traded()
    Order.objects.filter(pk=working.pk).delete()

    _reconcile()

    _assert_found(account, f"unknown_order:{working.broker_order_id}")


def test_reconcile_command_when_doctored_then_exit_1_and_lists_it(capsys) -> None:
    account, _, _ = _traded()
    Position.objects.filter(account=account).update(quantity=D(9))

    with pytest.raises(SystemExit) as exited:
        call_command("reconcile", "--account", account.name)

    assert exited.value.code == 1
    assert "[position] BTC-USD: we hold 9, the broker reports 10" in capsys.readouterr().out
    assert system_mode_get() is SystemMode.PAUSE


# --- doctoring the paper book ------------------------------------------------------------------


def test_reconcile_when_the_paper_position_is_doctored_then_found_and_paused() -> None:
    account, _, _ = _traded()
    PaperPosition.objects.update(quantity=D(12))

    _reconcile()

    _assert_found(account, "position:BTC-USD")


def test_reconcile_when_the_paper_cash_is_doctored_then_found_and_paused() -> None:
    account, _, _ = _traded()
    PaperAccount.objects.filter(account=account).update(cash=D(1))

    _reconcile()

    _assert_found(account, "cash:USD")


def test_reconcile_when_the_paper_order_is_deleted_then_ours_is_missing_at_the_broker() -> None:
    account, _, working = _traded()
    PaperOrder.objects.filter(client_order_id=working.client_order_id).delete()

    _reconcile()

    _assert_found(account, f"missing_order:{working.client_order_id}")


def test_reconcile_when_the_paper_broker_cancelled_the_order_then_ours_follows_clean() -> None:
    account, _, working = _traded()
    PaperOrder.objects.filter(client_order_id=working.client_order_id).update(status="canceled")

    _reconcile()

    working.refresh_from_db()
    assert working.status == "canceled"  # settled from the broker's status, as at a real one
    assert not _open_keys(account)
    assert system_mode_get() is SystemMode.NORMAL


def test_reconcile_when_the_paper_broker_has_an_order_we_never_sent_then_unknown() -> None:
    account, _ = _bought()
    PaperOrder.objects.create(
        account=PaperAccount.objects.get(account=account),
        broker_order_id="paper-elsewhere",
        client_order_id="placed-by-hand",
        instrument="BTC-USD",
        side=Side.SELL.value,
        order_type="market",
        quantity=D(1),
        status="accepted",
        eligible_after=T0,
    )

    _reconcile()

    _assert_found(account, "unknown_order:paper-elsewhere")


# --- clean stays clean -------------------------------------------------------------------------


def test_reconcile_when_trading_normally_then_every_run_is_clean() -> None:
    account, _, _ = _traded()
    assert len(_match(account, _bar(T0 + 2 * MINUTE, "102"))) == 1  # the exit fills: flat
    _reconcile()
    again = order_send(order_id=decide(account, stake="500").order.pk)  # in again, with 5
    assert again.status == "accepted", again.status_reason
    assert len(_match(account, _bar(T0 + 3 * MINUTE, "103"))) == 1

    _reconcile()
    call_command("reconcile")

    assert Position.objects.get(account=account).quantity == D(5)
    assert PaperPosition.objects.get().quantity == D(5)
    assert not Discrepancy.objects.exists()
    assert system_mode_get() is SystemMode.NORMAL
    runs = account.reconciliation_runs.order_by("id")
    assert [r.outcome for r in runs] == [ReconciliationOutcome.CLEAN] * 5
