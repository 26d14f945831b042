"""Trading writes: decisions to orders, the idempotent send, fills applied exactly once.

Lock order everywhere: SystemState (share) -> Order -> Position -> Account.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts.models import Account, Broker
from apps.audit.models import DecisionAction, DecisionLog
from apps.audit.services import audit_record, decision_record
from apps.core import influx
from apps.marketdata.models import Instrument
from apps.model.accounting import Position as PositionValue
from apps.model.intents import entry_intent, exit_intent
from apps.model.orders import Fill as FillValue
from apps.model.orders import OrderIntent, OrderState, OrderStatus, transition
from apps.model.values import Instrument as InstrumentSpec
from apps.model.values import OrderType, Side
from apps.model.venues import (
    Venue,
    VenueError,
    VenueRejected,
    VenueTemporaryError,
)
from apps.notifications.services import notify_on_commit
from apps.risk.domain.checks import CheckResult, RiskContext, check_mode, order_check
from apps.risk.domain.modes import SystemMode
from apps.risk.models import SystemState
from apps.risk.selectors import risk_context_for
from apps.risk.services import (
    equity_observe,
    hypothetical_position,
    hypothetical_trade_record,
    risk_limits_from,
    system_mode_lock_shared,
    system_state_get,
)
from apps.strategies.domain.base import Signal, SignalAction
from apps.strategies.domain.sizing import quantity_for_stake
from apps.trading import realtime
from apps.trading.models import EquitySnapshot, Fill, Order, Position
from apps.trading.selectors import columns_sql, decision_inputs, instance_from_row
from apps.trading.venues.mapping import venue_order

logger = logging.getLogger(__name__)

# The database keeps 12 decimal places; quantities are cut (never rounded up) to it
# and money is rounded half-even to it, explicitly, before anything is stored.
DB_QUANTUM = Decimal("1e-12")
OPEN_STATUSES = tuple(s.value for s in OrderStatus if s.is_open) + (OrderStatus.INITIALIZED.value,)
# The kill switch's own closing orders: the only orders KILL lets out (see check_mode).
KILL_ORDER_PREFIX = "tb-kill-"


def new_client_order_id() -> str:
    return f"tb-{uuid.uuid4().hex}"


def _money(value: Decimal) -> Decimal:
    return value.quantize(DB_QUANTUM, rounding=ROUND_HALF_EVEN)


def instrument_spec(instrument: Instrument) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=instrument.symbol,
        base=instrument.base,
        quote=instrument.quote,
        tick_size=instrument.tick_size,
        lot_size=instrument.lot_size,
    )


def account_get_or_create(
    *,
    name: str,
    broker: str = Broker.PAPER,
    currency: str = "USD",
    starting_cash: Decimal | None = None,
) -> Account:
    cash = starting_cash if starting_cash is not None else settings.PAPER_STARTING_CASH
    account, _ = Account.objects.get_or_create(
        name=name,
        defaults={
            "broker": broker,
            "currency": currency,
            "starting_cash": cash,
            "cash": cash,
            "peak_equity": cash,
        },
    )
    return account


@dataclass(frozen=True)
class DecisionOutcome:
    decision: DecisionLog
    order: Order | None


def _position_quantity(account: Account, instrument: Instrument) -> Decimal:
    position = Position.objects.filter(account=account, instrument=instrument).first()
    return position.quantity if position else Decimal(0)


def _checks_json(decision_checks: Any) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "passed": c.passed, "detail": c.detail, "values": dict(c.values)}
        for c in decision_checks
    ]


@transaction.atomic
def decision_make(
    *,
    account: Account,
    signal: Signal,
    strategy: str,
    strategy_params: dict[str, Any],
    stake: Decimal,
    source: str = "engine",
) -> DecisionOutcome:
    """Turn a strategy signal into a recorded decision and, when approved, an order to send.

    Every signal that asks for a trade is recorded with each pre-trade check and its
    numbers; a denial is a recorded decision (and a DENIED order), never an exception.
    In OBSERVATION nothing is sent: the decision is logged as "would have ..." and its
    hypothetical trade recorded (filled at the next bar's open by the engine); the
    position it decides on is the real one plus what this observation period would
    have traded, so the hypothetical book enters and exits as live trading would.
    """
    # Instrument, mode, position, working orders and limits: one round trip (the hot path).
    known = decision_inputs(
        account_id=account.pk, symbol=signal.instrument, open_statuses=OPEN_STATUSES
    )
    instrument = known.instrument
    mode = SystemMode(known.mode if known.mode is not None else system_state_get().mode)
    # The ML strategy in its own observation (critical live ECE) decides but sends nothing.
    if mode is SystemMode.NORMAL and signal.inputs.get("ml_observation") == "true":
        mode = SystemMode.OBSERVATION
    position_qty = known.position_quantity
    if mode is SystemMode.OBSERVATION:
        position_qty += hypothetical_position(account_id=account.pk, instrument_id=instrument.pk)
    inputs = {"close": str(signal.price), **signal.inputs}
    prediction_id = (
        int(signal.inputs["prediction_id"]) if "prediction_id" in signal.inputs else None
    )
    common = dict(
        bar_ts=signal.ts,
        account=account.name,
        instrument=instrument.symbol,
        strategy=strategy,
        strategy_params=strategy_params,
        inputs=inputs,
        signal=signal.action.value,
        mode=mode.value,
        source=source,
        model_version=signal.inputs.get("model_version", ""),
        prediction_id=prediction_id,
    )

    hold_reason = ""
    if known.working:
        hold_reason = "an order for this instrument is still working"
    elif signal.action is SignalAction.ENTER_LONG and position_qty > 0:
        hold_reason = "already long"
    elif signal.action is SignalAction.EXIT_LONG and position_qty <= 0:
        hold_reason = "no long position to exit"
    elif signal.action is SignalAction.HOLD:
        hold_reason = "hold"
    if hold_reason:
        inputs["hold_reason"] = hold_reason
        decision = decision_record(checks=[], action=DecisionAction.HOLD, **common)
        realtime.broadcast_decision(decision)
        return DecisionOutcome(decision, None)

    limits = risk_limits_from(known.limit)
    if signal.action is SignalAction.ENTER_LONG:
        if "stake_multiplier" in signal.inputs:  # ML: sized by probability, capped by the limits
            stake = min(
                stake * Decimal(signal.inputs["stake_multiplier"]), limits.max_order_notional
            )
        quantity = quantity_for_stake(stake, signal.price, instrument_spec(instrument))
        intent = entry_intent(
            instrument=instrument.symbol,
            quantity=quantity.quantize(DB_QUANTUM, rounding=ROUND_DOWN),
            decision_price=signal.price,
            reason=f"{strategy} {signal.action}",
        )
    else:
        intent = exit_intent(
            instrument=instrument.symbol,
            position_quantity=position_qty,
            decision_price=signal.price,
            reason=f"{strategy} {signal.action}",
        )

    ctx = risk_context_for(
        account_id=account.pk,
        instrument_id=instrument.pk,
        mode=mode,
        last_price=signal.price,
        position_quantity=position_qty,
        limits=limits,
        now=timezone.now(),
    )
    risk = order_check(intent=intent, ctx=ctx, limits=limits)
    checks = _checks_json(risk.checks)

    observation_only = mode is SystemMode.OBSERVATION and [c.name for c in risk.failed] == [
        "mode_gate"
    ]
    if observation_only:
        action = DecisionAction.WOULD_BUY if intent.side is Side.BUY else DecisionAction.WOULD_SELL
        decision = decision_record(checks=checks, action=action, **common)
        hypothetical_trade_record(
            account_id=account.pk,
            instrument_id=instrument.pk,
            decision_id=decision.pk,
            side=intent.side.value,
            quantity=intent.quantity,
            price=signal.price,
            bar_ts=signal.ts,
        )
        realtime.broadcast_decision(decision)
        return DecisionOutcome(decision, None)

    order = Order.objects.create(
        account=account,
        instrument=instrument,
        client_order_id=new_client_order_id(),
        side=intent.side.value,
        order_type=intent.order_type.value,
        quantity=intent.quantity,
        limit_price=intent.limit_price,
        decision_price=intent.decision_price,
        reduce_only=intent.reduce_only,
        status=(OrderStatus.INITIALIZED if risk.approved else OrderStatus.DENIED).value,
        status_reason="" if risk.approved else risk.reason,
        decision_bar_ts=signal.ts,
    )
    if risk.approved:
        action = DecisionAction.BUY if intent.side is Side.BUY else DecisionAction.SELL
    else:
        action = DecisionAction.DENIED
    decision = decision_record(
        checks=checks, action=action, order_ids=[order.client_order_id], **common
    )
    realtime.broadcast_decision(decision)
    realtime.broadcast_order(order)
    if risk.approved:
        from apps.trading.tasks import order_send as order_send_task

        order_id = order.pk
        transaction.on_commit(lambda: _enqueue_send(order_send_task, order_id))
    return DecisionOutcome(decision, order)


def _enqueue_send(task: Any, order_id: int) -> None:
    """Hand a committed order to the execution queue; if the queue is down, the outbox sweep
    (apps.brokers.services.orders_outbox_sweep) sends it later, or refuses it when stale."""
    try:
        task.delay(order_id=order_id)
    except Exception:  # noqa: BLE001 - the order is recorded; never lose the engine over it
        logger.exception(
            "order %s recorded but not enqueued (queue unavailable): the outbox sweep retries",
            order_id,
        )


def venue_for(account: Account, *, purpose: str = "execution") -> Venue:
    """The account's broker adapter (apps.trading.venues.factory: settings + credentials)."""
    from apps.trading.venues.factory import venue_get

    return venue_get(account, purpose=purpose)


def _set_status(order: Order, new: OrderStatus, reason: str = "") -> None:
    order.status = transition(OrderStatus(order.status), new).value
    if reason:
        order.status_reason = reason


def _order_intent(order: Order) -> OrderIntent:
    """The intent an order row carries (what the mode gate judges at send time)."""
    return OrderIntent(
        instrument=order.instrument.symbol,
        side=Side(order.side),
        quantity=order.quantity,
        order_type=OrderType(order.order_type),
        limit_price=order.limit_price,
        reduce_only=order.reduce_only,
    )


def _gate(order: Order, mode: SystemMode, position_quantity: Decimal) -> CheckResult:
    """The mode gate for ``order`` in ``mode`` with the account's ``position_quantity``."""
    return check_mode(
        _order_intent(order),
        RiskContext(
            mode=mode,
            last_price=order.decision_price or Decimal(1),
            position_quantity=position_quantity,
            kill_switch_order=order.client_order_id.startswith(KILL_ORDER_PREFIX),
        ),
    )


def _sql_table(model: Any) -> str:
    return f'"{model._meta.db_table}"'


_SEND_SQL: dict[str, str] = {}


def _send_sql(name: str) -> str:
    """The two statements of the send path, built once from the models' metadata.

    Both take the share lock of the mode row in a sub-SELECT, which runs before the
    order row is locked: the documented lock order (SystemState -> Order), and one
    round trip instead of three.
    """
    if not _SEND_SQL:
        order, account, instrument = _sql_table(Order), _sql_table(Account), _sql_table(Instrument)
        state, position = _sql_table(SystemState), _sql_table(Position)
        mode = f'(SELECT s."mode" FROM {state} s WHERE s."id" = 1 FOR SHARE)'  # noqa: S608
        # Names from the models, values as parameters.
        _SEND_SQL["order"] = f"""
            SELECT {columns_sql(Order, "o")}, {columns_sql(Account, "a")},
                {columns_sql(Instrument, "i")}, {mode},
                (SELECT p."quantity" FROM {position} p
                  WHERE p."account_id" = o."account_id" AND p."instrument_id" = o."instrument_id")
            FROM {order} o
            JOIN {account} a ON a."id" = o."account_id"
            JOIN {instrument} i ON i."id" = o."instrument_id"
            WHERE o."id" = %s
            FOR UPDATE OF o
        """  # noqa: S608
        _SEND_SQL["gate"] = f"""
            SELECT {mode}, (SELECT p."quantity" FROM {position} p
                             WHERE p."account_id" = %s AND p."instrument_id" = %s)
        """  # noqa: S608
    return _SEND_SQL[name]


def _order_lock_for_send(order_id: int) -> tuple[Order, SystemMode, Decimal]:
    """The order (with its account and instrument) under its row lock, the mode under a
    share lock of the mode row, and the account's position in it: one statement (in a
    transaction). Raises ``Order.DoesNotExist`` for an unknown id."""
    with connection.cursor() as cursor:
        cursor.execute(_send_sql("order"), [order_id])
        row = cursor.fetchone()
    if row is None:
        raise Order.DoesNotExist(f"Order matching query does not exist: id {order_id}")
    order, at = instance_from_row(Order, row, 0)
    order.account, at = instance_from_row(Account, row, at)
    order.instrument, at = instance_from_row(Instrument, row, at)
    mode, quantity = row[at], row[at + 1]
    if mode is None:  # no SystemState row yet: created (NORMAL) and locked as everywhere else
        return order, system_mode_lock_shared(), quantity or Decimal(0)
    return order, SystemMode(mode), quantity if quantity is not None else Decimal(0)


def _send_gate(order: Order) -> tuple[SystemMode, CheckResult]:
    """The mode gate for ``order``, read under a share lock of the mode row (in a transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(_send_sql("gate"), [order.account_id, order.instrument_id])
        mode, quantity = cursor.fetchone()
    mode = SystemMode(mode) if mode is not None else system_mode_lock_shared()
    return mode, _gate(order, mode, quantity if quantity is not None else Decimal(0))


def _order_refuse(
    order: Order, status: OrderStatus, action: str, mode: SystemMode, gate: CheckResult, when: str
) -> None:
    """The mode gate said no: record why on the order and in the audit trail, push it."""
    _set_status(order, status, f"mode {mode.value} {when}: {gate.detail}")
    order.save(update_fields=["status", "status_reason", "updated_at"])
    audit_record(
        actor="execution",
        action=action,
        target=order.client_order_id,
        data={"mode": mode.value, "detail": gate.detail},
    )
    realtime.broadcast_order(order)


def order_send(*, order_id: int) -> Order:
    """Send one order to its broker, at most once, never after a PAUSE or KILL that forbids it.

    1. Under the order's row lock: only an INITIALIZED order goes on (a retried or
       redelivered task finds it SUBMITTED or later and returns); the mode gate is
       checked (in KILL, every order but the kill switch's own reduce-only closing
       orders is denied). The order is marked SUBMITTED and committed BEFORE the
       broker is called: after a crash it is "in flight", settled by a status query
       or reconciliation, never resent blindly.
    2. The broker call runs inside a transaction that holds a share lock of the mode
       row and checks the gate again. A mode change takes that row FOR UPDATE, so it
       waits for a send in progress, and no send starts after it: an order that the
       new mode forbids is CANCELED without reaching the broker.
    3. The ack (or the rejection) is recorded.
    """
    with transaction.atomic():
        order, mode, position_quantity = _order_lock_for_send(order_id)
        if order.status != OrderStatus.INITIALIZED:
            logger.info("order %s already %s: not sent again", order.client_order_id, order.status)
            return order
        gate = _gate(order, mode, position_quantity)
        if not gate.passed:
            _order_refuse(
                order, OrderStatus.DENIED, "order.denied_at_send", mode, gate, "at send time"
            )
            return order
        _set_status(order, OrderStatus.SUBMITTED)
        order.submitted_at = timezone.now()
        order.save(update_fields=["status", "submitted_at", "updated_at"])

    venue = venue_for(order.account)
    try:
        with transaction.atomic():
            mode, gate = _send_gate(order)
            if not gate.passed:
                order = Order.objects.select_for_update().get(pk=order_id)
                if order.status == OrderStatus.SUBMITTED:
                    _order_refuse(
                        order, OrderStatus.CANCELED, "order.withheld", mode, gate, "before send"
                    )
                return order
            ack = venue.submit(venue_order(order))
        audit_record(
            actor="execution",
            action="order.sent",
            target=order.client_order_id,
            data={"venue": venue.name, "broker_order_id": ack.broker_order_id},
        )
    except VenueRejected as exc:
        with transaction.atomic():
            order = Order.objects.select_for_update().select_related("instrument").get(pk=order_id)
            if order.status == OrderStatus.SUBMITTED:
                _set_status(order, OrderStatus.REJECTED, str(exc))
                order.save(update_fields=["status", "status_reason", "updated_at"])
                notify_on_commit(
                    severity="warning",
                    code="order.rejected",
                    title=f"Order {order.client_order_id} rejected by {venue.name}",
                    body=f"{order.side} {order.quantity} {order.instrument.symbol}: {exc}",
                    dedup_key=f"order-rejected:{order.client_order_id}",
                    data={"order": order.client_order_id, "code": exc.code},
                )
            realtime.broadcast_order(order)
        return order
    except VenueTemporaryError:
        logger.warning(
            "order %s: outcome unknown after send; left SUBMITTED for reconciliation",
            order.client_order_id,
        )
        raise

    with transaction.atomic():
        order = Order.objects.select_for_update().select_related("instrument").get(pk=order_id)
        order.broker_order_id = ack.broker_order_id
        if order.status == OrderStatus.SUBMITTED:
            _set_status(order, OrderStatus.ACCEPTED)
        order.save(update_fields=["status", "broker_order_id", "updated_at"])
        realtime.broadcast_order(order)
    if settings.INFLUXDB_URL:  # decided -> acknowledged by the broker: the order path's latency
        now = timezone.now()
        influx.write_latency(
            kind="order",
            seconds=(now - order.created_at).total_seconds(),
            ts=now,
            account=order.account.name,
            instrument=order.instrument.symbol,
        )
    return order


def _order_state(order: Order, trade_ids: set[str]) -> OrderState:
    return OrderState(
        client_order_id=order.client_order_id,
        instrument=order.instrument.symbol,
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        quantity=order.quantity,
        limit_price=order.limit_price,
        status=OrderStatus(order.status),
        filled_quantity=order.filled_quantity,
        avg_fill_price=order.avg_fill_price,
        fees=order.fees,
        trade_ids=trade_ids,
        filled_notional=(order.avg_fill_price or Decimal(0)) * order.filled_quantity,
    )


def _fill_book(
    *, fill: FillValue, state: OrderState, order: Order, position: Position, account: Account
) -> Fill:
    """Book one fill onto the in-memory account, position and order rows; return the unsaved
    Fill row.

    ``state`` already has the fill applied (which validated it). The caller holds the rows'
    locks (order -> position -> account) and saves them, one by one or in a batch. Money is
    rounded half-even to the database's 12 places once per fill.
    """
    value = PositionValue(
        instrument=order.instrument.symbol,
        quantity=position.quantity,
        avg_price=position.avg_price,
        realized_pnl=position.realized_pnl,
        fees=position.fees,
    )
    realized = value.apply_fill(fill)
    value.fees += fill.fee
    fee = _money(fill.fee)
    notional = fill.quantity * fill.price
    account.cash = _money(
        account.cash - notional - fee if fill.side is Side.BUY else account.cash + notional - fee
    )
    account.fees_paid = _money(account.fees_paid + fee)
    account.realized_pnl = _money(account.realized_pnl + realized)
    position.quantity = value.quantity
    position.avg_price = _money(value.avg_price)
    position.realized_pnl = _money(value.realized_pnl)
    position.fees = _money(value.fees)
    position.last_price = fill.price
    order.status = state.status.value
    order.filled_quantity = state.filled_quantity
    order.avg_fill_price = (
        _money(state.avg_fill_price) if state.avg_fill_price is not None else None
    )
    order.fees = _money(state.fees)
    return Fill(
        account=account,
        order=order,
        trade_id=fill.trade_id,
        side=fill.side.value,
        quantity=fill.quantity,
        price=fill.price,
        fee=fee,
        realized_pnl=_money(realized),
        ts=fill.ts,
    )


def fill_apply(*, fill: FillValue) -> Fill | None:
    """Apply one broker execution exactly once. Returns None when it was applied before.

    The order row lock serializes every fill of an order, so the "seen this trade
    id?" check cannot race; the (account, trade_id) unique constraint backs it.
    """
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .select_related("instrument", "account")
            .get(client_order_id=fill.client_order_id)
        )
        trade_ids = set(order.fills.values_list("trade_id", flat=True))
        if fill.trade_id in trade_ids:
            logger.info("fill %s already applied: ignored", fill.trade_id)
            return None
        state = _order_state(order, trade_ids)
        state.apply_fill(fill)  # raises on overfill or an illegal status; nothing is written then

        position, _ = Position.objects.select_for_update().get_or_create(
            account=order.account, instrument=order.instrument
        )
        account = Account.objects.select_for_update().get(pk=order.account_id)
        row = _fill_book(fill=fill, state=state, order=order, position=position, account=account)
        account.save(update_fields=["cash", "fees_paid", "realized_pnl"])
        position.save()
        order.save(
            update_fields=["status", "filled_quantity", "avg_fill_price", "fees", "updated_at"]
        )
        row.save()
        transaction.on_commit(lambda: influx.write_fill(row, order))
        notify_on_commit(  # info: recorded, not pushed (table 5.1)
            severity="info",
            code="order.filled",
            title=f"Fill {fill.trade_id}: {fill.side.value} {fill.quantity} {fill.instrument}",
            body=f"at {fill.price}, fee {fill.fee}; order {order.client_order_id} {order.status}",
            dedup_key=f"fill:{order.account_id}:{fill.trade_id}",
            data={"order": order.client_order_id, "trade_id": fill.trade_id},
        )
        realtime.broadcast_fill(row, order)
        realtime.broadcast_order(order)
        realtime.broadcast_positions(account)
    return row


def mark_to_market(
    *,
    account: Account,
    prices: dict[str, Decimal],
    ts: datetime,
    snapshot: bool = True,
    monitor: bool = True,
) -> EquitySnapshot | None:
    """Update the marks of the account's positions and record an equity snapshot.

    Then, after the commit, the risk rules see the marked equity (``equity_observe``:
    drawdown and daily-loss alerts, automatic KILL and PAUSE) on every call.
    """
    snap = None
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        positions = list(Position.objects.select_related("instrument").filter(account=account))
        for position in positions:
            price = prices.get(position.instrument.symbol)
            if price is not None and price != position.last_price:
                position.last_price = price
                position.save(update_fields=["last_price", "updated_at"])
        market_value = sum(
            ((p.last_price or p.avg_price) * p.quantity for p in positions), Decimal(0)
        )
        equity = _money(account.cash + market_value)
        open_positions = sum(1 for p in positions if p.quantity)
        if snapshot:
            unrealized = sum((p.unrealized_pnl for p in positions), Decimal(0))
            if equity > account.peak_equity:
                account.peak_equity = equity
                account.save(update_fields=["peak_equity"])
            drawdown = (
                (account.peak_equity - equity) / account.peak_equity
                if account.peak_equity > 0
                else Decimal(0)
            )
            snap = EquitySnapshot.objects.create(
                account=account,
                ts=ts,
                equity=equity,
                cash=account.cash,
                realized_pnl=account.realized_pnl,
                unrealized_pnl=_money(unrealized),
                fees=account.fees_paid,
                drawdown=drawdown.quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN),
            )
            transaction.on_commit(lambda: influx.write_equity(snap, positions=positions))
            realtime.broadcast_equity(snap, account)
            if positions:
                realtime.broadcast_positions(account)
    if monitor:
        equity_observe(account_id=account.pk, equity=equity, ts=ts, open_positions=open_positions)
    return snap


# --- the kill switch's cancels and closes (called inline by apps.risk.services) -----------


@dataclass(frozen=True)
class CancelResult:
    cancels_sent: int
    denied: int
    errors: tuple[str, ...]


def orders_cancel_all(*, account: Account, actor: str, reason: str) -> CancelResult:
    """Cancel every open order of ``account`` at its broker, in this process.

    An order never sent (INITIALIZED) is DENIED, not cancelled: it never left. A sent
    one is cancelled through the venue; the paper broker's cancel is final at once
    (CANCELED), a real broker's is PENDING_CANCEL until it confirms. The kill switch's
    own closing orders are left alone. One audit row lists what was done.
    """
    venue = venue_for(account, purpose="control")
    immediate = getattr(venue, "cancel_is_immediate", False)
    sent = denied = 0
    errors: list[str] = []
    now = timezone.now()
    with transaction.atomic():
        orders = list(
            Order.objects.select_for_update()
            .select_related("instrument")
            .filter(account=account, status__in=OPEN_STATUSES)
            .exclude(client_order_id__startswith=KILL_ORDER_PREFIX)
            .order_by("id")
        )
        # A real broker gets its own mass cancel (Kraken CancelAll, IB reqGlobalCancel):
        # one request that also catches orders we do not know about. If it fails, each
        # order is cancelled one by one below.
        mass_cancelled = False
        if not immediate and any(o.status != OrderStatus.INITIALIZED for o in orders):
            try:
                venue.cancel_all()
                mass_cancelled = True
            except VenueError as exc:
                errors.append(f"mass cancel: {exc}")
        changed: list[Order] = []
        for order in orders:
            status = OrderStatus(order.status)
            if status is OrderStatus.INITIALIZED:
                _set_status(order, OrderStatus.DENIED, f"{reason} (never sent)")
                denied += 1
            else:
                if not mass_cancelled:
                    try:
                        venue.cancel(venue_order(order))
                    except VenueError as exc:
                        errors.append(f"cancel {order.client_order_id}: {exc}")
                        continue
                sent += 1
                if immediate or status is OrderStatus.SUBMITTED:
                    _set_status(order, OrderStatus.CANCELED, reason)
                elif status is not OrderStatus.PENDING_CANCEL:
                    _set_status(order, OrderStatus.PENDING_CANCEL, reason)
            order.updated_at = now
            changed.append(order)
        if changed:
            _rows_update(Order, changed, ["status", "status_reason", "updated_at"])
            audit_record(
                actor=actor,
                action="orders.cancel_all",
                target=account.name,
                data={
                    "reason": reason,
                    "cancels_sent": sent,
                    "denied": denied,
                    "orders": [o.client_order_id for o in changed],
                    "errors": errors,
                },
            )
            for order in changed[:BULK_BROADCAST_LIMIT]:
                realtime.broadcast_order(order)
    return CancelResult(sent, denied, tuple(errors))


def position_close_now(*, position: Position, actor: str, reason: str) -> Order | None:
    """Close ``position`` with a reduce-only market order sent here, through ``order_send``.

    The order goes through the same last-moment gate as every order (in KILL only
    the kill switch's own closing orders pass). At the paper broker it fills at once
    at the last mark (``PaperVenue.fill_at_mark``); a real broker's fills arrive later.
    Returns the closing order (None when the position is already flat).
    """
    quantity = position.quantity
    if not quantity:
        return None
    mark = position.last_price or position.avg_price
    order = Order.objects.create(
        account=position.account,
        instrument=position.instrument,
        client_order_id=f"{KILL_ORDER_PREFIX}{uuid.uuid4().hex}",
        side=(Side.SELL if quantity > 0 else Side.BUY).value,
        order_type=OrderType.MARKET.value,
        quantity=abs(quantity),
        decision_price=mark,
        reduce_only=True,
        status=OrderStatus.INITIALIZED.value,
        status_reason=f"kill switch ({actor}): {reason}"[:500],
    )
    order = order_send(order_id=order.pk)
    if order.status not in (OrderStatus.ACCEPTED.value, OrderStatus.SUBMITTED.value):
        return order
    venue = venue_for(position.account, purpose="control")
    fill_at_mark = getattr(venue, "fill_at_mark", None)
    if fill_at_mark is not None:
        fill_apply(fill=fill_at_mark(order, mark=mark, ts=timezone.now()))
        order.refresh_from_db(fields=["status", "filled_quantity", "avg_fill_price", "fees"])
    return order


def _rows_update(model: Any, objs: list[Any], fields: list[str]) -> None:
    """``bulk_update`` for hundreds of rows in one ``UPDATE ... FROM (VALUES ...)``.

    Django's ``bulk_update`` compiles a CASE per field and row, which costs more than
    the database work at the kill switch's sizes; this builds the statement directly
    (values passed as parameters, cast to each column's type).
    """
    if not objs:
        return
    opts = model._meta
    columns = [opts.get_field(name) for name in fields]
    row = "(%s::bigint, " + ", ".join(f"%s::{c.db_type(connection)}" for c in columns) + ")"
    params: list[Any] = []
    for obj in objs:
        params.append(obj.pk)
        params.extend(c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns)
    names = ", ".join(f'"{c.column}"' for c in columns)
    assignments = ", ".join(f'"{c.column}" = v."{c.column}"' for c in columns)
    sql = (
        f'UPDATE "{opts.db_table}" AS t SET {assignments} '  # noqa: S608 - names from the model
        f"FROM (VALUES {', '.join([row] * len(objs))}) AS v(id, {names}) WHERE t.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# Broadcasting every one of hundreds of order updates at once floods the channel layer;
# past this many, the panel gets the first ones and reloads the rest on mode.changed.
BULK_BROADCAST_LIMIT = 50


def fills_apply(*, fills: list[FillValue]) -> list[Fill]:
    """Apply many executions of ONE account at once, each exactly once.

    The same rules as ``fill_apply`` (the same domain objects: ``OrderState.apply_fill``
    and the average-cost ``Position``; the same locks in the same order: orders ->
    positions -> account; the same rounding) in a constant number of queries, for the
    kill switch's closing fills. A fill whose trade id was applied before is skipped.
    """
    if not fills:
        return []
    with transaction.atomic():
        orders = {
            o.client_order_id: o
            for o in Order.objects.select_for_update()
            .select_related("instrument")
            .filter(client_order_id__in=[f.client_order_id for f in fills])
            .order_by("id")
        }
        account_ids = {o.account_id for o in orders.values()}
        if len(account_ids) != 1:
            raise ValueError(
                f"fills_apply takes the fills of one account, got {sorted(account_ids)}"
            )
        account_id = account_ids.pop()
        seen: dict[int, set[str]] = {o.pk: set() for o in orders.values()}
        for order_id, trade_id in Fill.objects.filter(order_id__in=seen).values_list(
            "order_id", "trade_id"
        ):
            seen[order_id].add(trade_id)
        instrument_ids = {o.instrument_id for o in orders.values()}
        Position.objects.bulk_create(
            [Position(account_id=account_id, instrument_id=i) for i in instrument_ids],
            ignore_conflicts=True,
        )
        positions = {
            p.instrument_id: p
            for p in Position.objects.select_for_update()
            .select_related("instrument")
            .filter(account_id=account_id, instrument_id__in=instrument_ids)
            .order_by("id")
        }
        account = Account.objects.select_for_update().get(pk=account_id)
        states: dict[int, OrderState] = {}
        rows: list[Fill] = []
        for fill in fills:
            order = orders[fill.client_order_id]
            if fill.trade_id in seen[order.pk]:
                continue
            state = states.get(order.pk) or _order_state(order, seen[order.pk])
            state.apply_fill(fill)  # raises on overfill: nothing of the batch is written
            states[order.pk] = state
            rows.append(
                _fill_book(
                    fill=fill,
                    state=state,
                    order=order,
                    position=positions[order.instrument_id],
                    account=account,
                )
            )
        if not rows:
            return []
        now = timezone.now()
        for order in orders.values():
            order.updated_at = now
        for position in positions.values():
            position.updated_at = now
        account.save(update_fields=["cash", "fees_paid", "realized_pnl"])
        _rows_update(
            Position,
            list(positions.values()),
            ["quantity", "avg_price", "realized_pnl", "fees", "last_price", "updated_at"],
        )
        _rows_update(
            Order,
            list(orders.values()),
            ["status", "filled_quantity", "avg_fill_price", "fees", "updated_at"],
        )
        Fill.objects.bulk_create(rows)
        for row in rows[:BULK_BROADCAST_LIMIT]:
            realtime.broadcast_fill(row, row.order)
            realtime.broadcast_order(row.order)
        realtime.broadcast_positions(account)
    return rows


def positions_close_all(
    *, account: Account, actor: str, reason: str
) -> tuple[list[Order], list[str]]:
    """Close every position of ``account`` at once: the kill switch's closing orders.

    One reduce-only market order per position, through the same protocol as
    ``order_send`` but batched: (1) under the orders' row locks and a share lock of the
    mode row, each passes ``check_mode`` (in KILL only the kill switch's own closing
    orders do) and is marked SUBMITTED and committed before the broker is called;
    (2) the broker calls; (3) the acks. At the paper broker the orders then fill at
    once at the last mark (``PaperVenue.fill_at_mark``), applied by ``fills_apply``.
    Returns (the closing orders, errors).
    """
    venue = venue_for(account, purpose="control")
    positions = list(
        Position.objects.filter(account=account).exclude(quantity=0).select_related("instrument")
    )
    if not positions:
        return [], []
    marks = {p.instrument_id: p.last_price or p.avg_price for p in positions}
    created = Order.objects.bulk_create(
        [
            Order(
                account=account,
                instrument=p.instrument,
                client_order_id=f"{KILL_ORDER_PREFIX}{uuid.uuid4().hex}",
                side=(Side.SELL if p.quantity > 0 else Side.BUY).value,
                order_type=OrderType.MARKET.value,
                quantity=abs(p.quantity),
                decision_price=marks[p.instrument_id],
                reduce_only=True,
                status=OrderStatus.INITIALIZED.value,
                status_reason=f"kill switch ({actor}): {reason}"[:500],
            )
            for p in positions
        ]
    )
    ids = [o.pk for o in created]
    errors: list[str] = []
    with transaction.atomic():
        orders = list(
            Order.objects.select_for_update()
            .select_related("instrument")
            .filter(pk__in=ids, status=OrderStatus.INITIALIZED.value)
            .order_by("id")
        )
        mode = system_mode_lock_shared()
        quantities = dict(
            Position.objects.filter(account=account).values_list("instrument_id", "quantity")
        )
        now = timezone.now()
        sendable: list[Order] = []
        for order in orders:
            gate = check_mode(
                _order_intent(order),
                RiskContext(
                    mode=mode,
                    last_price=order.decision_price or Decimal(1),
                    position_quantity=quantities.get(order.instrument_id, Decimal(0)),
                    kill_switch_order=True,
                ),
            )
            if gate.passed:
                _set_status(order, OrderStatus.SUBMITTED)
                order.submitted_at = now
                sendable.append(order)
            else:
                _set_status(
                    order, OrderStatus.DENIED, f"mode {mode.value} at send time: {gate.detail}"
                )
                errors.append(f"{order.client_order_id} denied: {gate.detail}")
            order.updated_at = now
        _rows_update(Order, orders, ["status", "status_reason", "submitted_at", "updated_at"])

    acked: list[Order] = []
    for order in sendable:
        try:
            ack = venue.submit(venue_order(order))
        except VenueRejected as exc:
            _set_status(order, OrderStatus.REJECTED, str(exc))
            errors.append(f"{order.client_order_id} rejected: {exc}")
            continue
        except VenueTemporaryError as exc:
            errors.append(f"{order.client_order_id} outcome unknown (left SUBMITTED): {exc}")
            continue
        order.broker_order_id = ack.broker_order_id
        _set_status(order, OrderStatus.ACCEPTED)
        acked.append(order)
    with transaction.atomic():
        now = timezone.now()
        for order in sendable:
            order.updated_at = now
        _rows_update(Order, sendable, ["status", "status_reason", "broker_order_id", "updated_at"])
        audit_record(
            actor="execution",
            action="orders.sent",
            target=account.name,
            data={
                "venue": venue.name,
                "reason": "kill switch closing orders",
                "orders": {o.client_order_id: o.broker_order_id for o in acked},
                "errors": errors,
            },
        )
        for order in orders[:BULK_BROADCAST_LIMIT]:
            realtime.broadcast_order(order)
    fill_at_mark = getattr(venue, "fill_at_mark", None)
    if fill_at_mark is not None and acked:
        ts = timezone.now()
        fills_apply(fills=[fill_at_mark(o, mark=marks[o.instrument_id], ts=ts) for o in acked])
    return orders, errors
