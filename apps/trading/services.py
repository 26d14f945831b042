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
from django.db import transaction
from django.utils import timezone

from apps.audit.models import DecisionAction, DecisionLog
from apps.audit.services import audit_record, decision_record
from apps.marketdata.models import Instrument
from apps.risk.domain.checks import RiskContext, check_mode, order_check
from apps.risk.domain.modes import SystemMode
from apps.risk.services import risk_limits_for, system_mode_lock_shared, system_state_get
from apps.strategies.domain.base import Signal, SignalAction
from apps.strategies.domain.sizing import quantity_for_stake
from apps.trading import realtime
from apps.trading.domain.accounting import Position as PositionValue
from apps.trading.domain.orders import Fill as FillValue
from apps.trading.domain.orders import OrderIntent, OrderState, OrderStatus, transition
from apps.trading.domain.values import Instrument as InstrumentSpec
from apps.trading.domain.values import OrderType, Side
from apps.trading.models import Account, Broker, EquitySnapshot, Fill, Order, Position
from apps.trading.venues.base import Venue, VenueRejected, VenueTemporaryError

logger = logging.getLogger(__name__)

# The database keeps 12 decimal places; quantities are cut (never rounded up) to it
# and money is rounded half-even to it, explicitly, before anything is stored.
DB_QUANTUM = Decimal("1e-12")
OPEN_STATUSES = tuple(s.value for s in OrderStatus if s.is_open) + (OrderStatus.INITIALIZED.value,)


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
    In OBSERVATION nothing is sent: the decision is logged as "would have ...".
    """
    instrument = Instrument.objects.get(symbol=signal.instrument)
    mode = SystemMode(system_state_get().mode)
    position_qty = _position_quantity(account, instrument)
    inputs = {"close": str(signal.price), **signal.inputs}
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
    )

    working = Order.objects.filter(
        account=account, instrument=instrument, status__in=OPEN_STATUSES
    ).exists()
    hold_reason = ""
    if working:
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

    if signal.action is SignalAction.ENTER_LONG:
        quantity = quantity_for_stake(stake, signal.price, instrument_spec(instrument))
        intent = OrderIntent(
            instrument=instrument.symbol,
            side=Side.BUY,
            quantity=quantity.quantize(DB_QUANTUM, rounding=ROUND_DOWN),
            decision_price=signal.price,
            reason="sma cross above",
        )
    else:
        intent = OrderIntent(
            instrument=instrument.symbol,
            side=Side.SELL,
            quantity=position_qty,
            decision_price=signal.price,
            reduce_only=True,
            reason="exit long",
        )

    limits = risk_limits_for(account_id=account.pk)
    ctx = RiskContext(mode=mode, last_price=signal.price, position_quantity=position_qty)
    risk = order_check(intent=intent, ctx=ctx, limits=limits)
    checks = _checks_json(risk.checks)

    observation_only = mode is SystemMode.OBSERVATION and [c.name for c in risk.failed] == [
        "mode_gate"
    ]
    if observation_only:
        action = DecisionAction.WOULD_BUY if intent.side is Side.BUY else DecisionAction.WOULD_SELL
        decision = decision_record(checks=checks, action=action, **common)
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
        transaction.on_commit(lambda: order_send_task.delay(order_id=order_id))
    return DecisionOutcome(decision, order)


def venue_for(account: Account) -> Venue:
    if account.broker == Broker.PAPER:
        from apps.trading.venues.paper import PaperVenue

        return PaperVenue()
    raise NotImplementedError(
        f"account {account.name}: broker {account.broker!r} has no adapter yet; use the paper broker"
    )


def _set_status(order: Order, new: OrderStatus, reason: str = "") -> None:
    order.status = transition(OrderStatus(order.status), new).value
    if reason:
        order.status_reason = reason


def order_send(*, order_id: int) -> Order:
    """Send one order to its broker, at most once.

    1. Under the order's row lock: only an INITIALIZED order goes on (a retried or
       redelivered task finds it SUBMITTED or later and returns); the system mode is
       checked here, at the last moment, under a share lock of the mode row, so a
       mode change waits for this step and an order queued before PAUSE/KILL that
       would add exposure is denied. The order is marked SUBMITTED and committed
       BEFORE the broker is called: after a crash it is "in flight", settled by a
       status query or reconciliation, never resent blindly.
    2. The broker call.
    3. The ack (or the rejection) is recorded.
    """
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .select_related("account", "instrument")
            .get(pk=order_id)
        )
        if order.status != OrderStatus.INITIALIZED:
            logger.info("order %s already %s: not sent again", order.client_order_id, order.status)
            return order
        mode = system_mode_lock_shared()
        intent = OrderIntent(
            instrument=order.instrument.symbol,
            side=Side(order.side),
            quantity=order.quantity,
            order_type=OrderType(order.order_type),
            limit_price=order.limit_price,
            reduce_only=order.reduce_only,
        )
        gate = check_mode(
            intent,
            RiskContext(
                mode=mode,
                last_price=order.decision_price or Decimal(1),
                position_quantity=_position_quantity(order.account, order.instrument),
            ),
        )
        if not gate.passed:
            _set_status(order, OrderStatus.DENIED, f"mode {mode.value} at send time: {gate.detail}")
            order.save(update_fields=["status", "status_reason", "updated_at"])
            audit_record(
                actor="execution",
                action="order.denied_at_send",
                target=order.client_order_id,
                data={"mode": mode.value, "detail": gate.detail},
            )
            realtime.broadcast_order(order)
            return order
        _set_status(order, OrderStatus.SUBMITTED)
        order.submitted_at = timezone.now()
        order.save(update_fields=["status", "submitted_at", "updated_at"])

    venue = venue_for(order.account)
    try:
        ack = venue.submit(order)
        audit_record(
            actor="execution",
            action="order.sent",
            target=order.client_order_id,
            data={"venue": venue.name, "broker_order_id": ack.broker_order_id},
        )
    except VenueRejected as exc:
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order_id)
            if order.status == OrderStatus.SUBMITTED:
                _set_status(order, OrderStatus.REJECTED, str(exc))
                order.save(update_fields=["status", "status_reason", "updated_at"])
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
        value = PositionValue(
            instrument=order.instrument.symbol,
            quantity=position.quantity,
            avg_price=position.avg_price,
            realized_pnl=position.realized_pnl,
            fees=position.fees,
        )
        realized = value.apply_fill(fill)
        value.fees += fill.fee
        account = Account.objects.select_for_update().get(pk=order.account_id)

        fee = _money(fill.fee)
        notional = fill.quantity * fill.price
        account.cash = _money(
            account.cash - notional - fee
            if fill.side is Side.BUY
            else account.cash + notional - fee
        )
        account.fees_paid = _money(account.fees_paid + fee)
        account.realized_pnl = _money(account.realized_pnl + realized)
        account.save(update_fields=["cash", "fees_paid", "realized_pnl"])

        position.quantity = value.quantity
        position.avg_price = _money(value.avg_price)
        position.realized_pnl = _money(value.realized_pnl)
        position.fees = _money(value.fees)
        position.last_price = fill.price
        position.save()

        order.status = state.status.value
        order.filled_quantity = state.filled_quantity
        order.avg_fill_price = (
            _money(state.avg_fill_price) if state.avg_fill_price is not None else None
        )
        order.fees = _money(state.fees)
        order.save(
            update_fields=["status", "filled_quantity", "avg_fill_price", "fees", "updated_at"]
        )
        row = Fill.objects.create(
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
        realtime.broadcast_fill(row, order)
        realtime.broadcast_order(order)
        realtime.broadcast_positions(account)
    return row


def mark_to_market(
    *, account: Account, prices: dict[str, Decimal], ts: datetime, snapshot: bool = True
) -> EquitySnapshot | None:
    """Update the marks of the account's positions and record an equity snapshot."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        positions = list(Position.objects.select_related("instrument").filter(account=account))
        for position in positions:
            price = prices.get(position.instrument.symbol)
            if price is not None and price != position.last_price:
                position.last_price = price
                position.save(update_fields=["last_price", "updated_at"])
        if not snapshot:
            return None
        unrealized = sum((p.unrealized_pnl for p in positions), Decimal(0))
        market_value = sum(
            ((p.last_price or p.avg_price) * p.quantity for p in positions), Decimal(0)
        )
        equity = _money(account.cash + market_value)
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
        realtime.broadcast_equity(snap, account)
        if positions:
            realtime.broadcast_positions(account)
    return snap
