"""The decision path's reads: few round trips, nothing cached that could go stale.

decision_make reads the instrument, the mode, the position, the working orders, the
risk limit row, the account's positions and recent orders (and the last stored close when
no reference price is given) in one statement, and order_send's first transaction reads the order,
the mode (share lock, taken before the order's row lock) and the position in one.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.marketdata.models import Instrument
from apps.risk.domain.modes import SystemMode
from apps.risk.models import SystemState
from apps.risk.services.limits import risk_limit_set
from apps.risk.services.modes import system_mode_set
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.models import Order
from apps.trading.services import orders as services
from apps.trading.services.decisions import decision_make
from apps.trading.services.orders import order_send
from tests.trading.factories import T0, instrument, paper_account
from tests.trading.services.test_decision_make import PARAMS, decide, hold_long

pytestmark = pytest.mark.django_db


def statements(ctx: CaptureQueriesContext) -> list[str]:
    """The SQL sent, without transaction control (BEGIN, COMMIT, savepoints)."""
    skip = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [q["sql"].strip() for q in ctx.captured_queries if not q["sql"].strip().startswith(skip)]


def decide_on(account, symbol: str, stake: str = "1000"):  # noqa: ANN001, ANN201
    return decision_make(
        account=account,
        signal=Signal(
            instrument=symbol, ts=T0, action=SignalAction.ENTER_LONG, price=D("100"), inputs={}
        ),
        strategy="sma_cross",
        strategy_params=PARAMS,
        stake=D(stake),
        reference_price=D("100"),
        reference_ts=T0,
    )


def test_decision_when_limit_lowered_between_decisions_then_next_decision_denied() -> None:
    account = paper_account(max_order="5000")
    instrument("BTC-USD")
    instrument("ETH-USD")
    assert decide_on(account, "BTC-USD").order.status == "initialized"

    risk_limit_set(account_id=account.pk, values={"max_order_notional": "500"}, actor="test")
    outcome = decide_on(account, "ETH-USD")

    assert outcome.order.status == "denied"
    assert outcome.decision.failed_checks == ["max_order_notional"]
    failed = next(c for c in outcome.decision.checks if c["name"] == "max_order_notional")
    assert D(failed["values"]["limit"]) == D("500")


def test_decision_when_limit_raised_between_decisions_then_next_decision_approved() -> None:
    account = paper_account(max_order="500")
    instrument("BTC-USD")
    instrument("ETH-USD")
    assert decide_on(account, "BTC-USD").order.status == "denied"

    risk_limit_set(account_id=account.pk, values={"max_order_notional": "5000"}, actor="test")
    outcome = decide_on(account, "ETH-USD")

    assert outcome.order.status == "initialized"
    assert outcome.decision.check_result == "passed"


def test_decision_when_instrument_tick_changed_then_next_decision_sizes_with_it() -> None:
    account = paper_account()
    inst = instrument("BTC-USD")
    instrument("ETH-USD")
    decide_on(account, "BTC-USD", stake="1000")
    Instrument.objects.filter(pk=inst.pk).update(lot_size=D("3"))
    Order.objects.update(status="denied")  # nothing working: BTC-USD may decide again

    outcome = decide_on(account, "BTC-USD", stake="1000")

    assert outcome.order.quantity == D(9)  # 10 cut down to the new lot of 3


def test_decision_when_instrument_unknown_then_does_not_exist_and_nothing_recorded() -> None:
    account = paper_account()

    with pytest.raises(Instrument.DoesNotExist, match="NOPE-USD"):
        decide_on(account, "NOPE-USD")

    assert not Order.objects.exists()


def test_decision_when_no_system_state_row_yet_then_normal_and_row_created() -> None:
    account = paper_account()
    instrument()
    SystemState.objects.all().delete()

    outcome = decide(account)

    assert outcome.decision.mode == "normal"
    assert outcome.order.status == "initialized"
    assert SystemState.objects.get(pk=1).mode == "normal"


def test_decision_when_approved_then_one_read_and_two_inserts() -> None:
    account = paper_account()
    instrument()
    hold_long(account, "5")  # a position and a filled order: the reads have rows to find
    decide(account, SignalAction.EXIT_LONG)  # warm: the statements are built once
    Order.objects.filter(status="initialized").update(status="denied")

    with CaptureQueriesContext(connection) as ctx:
        outcome = decide(account, SignalAction.EXIT_LONG)

    assert outcome.order.status == "initialized"
    sql = statements(ctx)
    # decision inputs with the risk context (positions + recent orders); the order; the
    # decision log
    assert [s.split()[0] for s in sql] == ["SELECT", "INSERT", "INSERT"]


def test_decision_when_working_order_then_hold_after_one_read() -> None:
    account = paper_account()
    instrument()
    decide(account)

    with CaptureQueriesContext(connection) as ctx:
        outcome = decide(account)

    assert outcome.decision.inputs["hold_reason"] == "an order for this instrument is still working"
    assert [s.split()[0] for s in statements(ctx)] == ["SELECT", "INSERT"]


def test_order_send_when_sent_then_one_read_before_submitted() -> None:
    account = paper_account()
    instrument()
    order = decide(account).order

    with CaptureQueriesContext(connection) as ctx:
        sent = order_send(order_id=order.pk)

    assert sent.status == "accepted"
    sql = statements(ctx)
    submitted = next(i for i, s in enumerate(sql) if "'submitted'" in s)
    assert submitted == 1  # the order, the mode and the position in one statement
    assert "FOR SHARE" in sql[0]
    assert "FOR UPDATE OF" in sql[0]


def test_order_send_when_order_unknown_then_does_not_exist() -> None:
    with pytest.raises(Order.DoesNotExist):
        order_send(order_id=987654321)


def test_order_send_when_paused_then_exit_sent_and_entry_denied_with_position_read() -> None:
    account = paper_account()
    hold_long(account, "5")
    instrument("ETH-USD")
    exit_order = decide(account, SignalAction.EXIT_LONG).order
    entry_order = decide_on(account, "ETH-USD").order
    system_mode_set(mode=SystemMode.PAUSE, actor="test", source="cli", reason="test")

    assert order_send(order_id=exit_order.pk).status == "accepted"
    denied = order_send(order_id=entry_order.pk)
    assert denied.status == "denied"
    assert "mode pause at send time" in denied.status_reason


@pytest.mark.django_db(transaction=True)
def test_order_send_when_waiting_for_the_order_lock_then_already_holds_the_mode_share_lock(
    monkeypatch,
) -> None:
    """Lock order SystemState -> Order: a mode change cannot slip in between the two."""
    account = paper_account()
    instrument()
    monkeypatch.setattr("apps.trading.tasks.order_send.delay", lambda **kw: None)
    order = decide(account).order
    locked = threading.Event()
    release = threading.Event()
    results: list[str] = []

    def hold_order_lock() -> None:
        with transaction.atomic():
            Order.objects.select_for_update().get(pk=order.pk)
            locked.set()
            release.wait(10)
        connection.close()

    def send() -> None:
        results.append(services.order_send(order_id=order.pk).status)
        connection.close()

    holder = threading.Thread(target=hold_order_lock)
    sender = threading.Thread(target=send)
    holder.start()
    locked.wait(10)
    sender.start()
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
        dbname=settings_dict["NAME"],
    ) as other:
        deadline = time.monotonic() + 10
        refused = False
        while not refused and time.monotonic() < deadline:  # until the sender is waiting
            try:
                other.execute("SELECT mode FROM risk_systemstate WHERE id = 1 FOR UPDATE NOWAIT")
                other.rollback()
                time.sleep(0.02)
            except psycopg.errors.LockNotAvailable:
                other.rollback()
                refused = True
        assert sender.is_alive()  # still waiting for the order's row lock
    release.set()
    holder.join(10)
    sender.join(10)

    assert refused  # the mode row was share-locked by the waiting send
    assert results == ["accepted"]
