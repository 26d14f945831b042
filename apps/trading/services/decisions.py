"""Signals to decisions to orders: the decision log row, the pre-trade checks, the outbox hand-off."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Account
from apps.audit.models import DecisionAction, DecisionLog
from apps.audit.services import decision_record
from apps.marketdata.models import Instrument
from apps.model.intents import entry_intent, exit_intent
from apps.model.orders import OPEN_STATUSES, OrderStatus
from apps.model.values import Side
from apps.risk.domain.checks import order_check
from apps.risk.domain.modes import SystemMode
from apps.risk.services.limits import risk_limits_from
from apps.risk.services.modes import system_state_get
from apps.strategies.domain.base import Signal, SignalAction
from apps.strategies.domain.sizing import quantity_for_stake
from apps.trading import realtime
from apps.trading.models import Order, Position
from apps.trading.selectors import decision_inputs, risk_context_for
from apps.trading.services.common import DB_QUANTUM, instrument_spec, new_client_order_id
from apps.trading.services.observation import hypothetical_position, hypothetical_trade_record

logger = logging.getLogger(__name__)


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


def decision_make(
    *,
    account: Account,
    signal: Signal,
    strategy: str,
    strategy_params: dict[str, Any],
    stake: Decimal,
    source: str = "engine",
    reference_price: Decimal | None = None,
    reference_ts: datetime | None = None,
    timeframe: str | None = None,
    savepoint: bool = True,
) -> DecisionOutcome:
    """Turn a strategy signal into a recorded decision and, when approved, an order to send.

    Every signal that asks for a trade is recorded with each pre-trade check and its
    numbers; a denial is a recorded decision (and a DENIED order), never an exception.
    In OBSERVATION nothing is sent: the decision is logged as "would have ..." and its
    hypothetical trade recorded (filled at the next bar's open by the engine); the
    position it decides on is the real one plus what this observation period would
    have traded, so the hypothetical book enters and exits as live trading would.

    The price collar compares the order's price with the market's reference price:
    ``reference_price`` seen at ``reference_ts`` (the feed's last trade or close and its
    time, given by the engine), else the instrument's last stored close (of ``timeframe``
    when given, else of any stored timeframe) and its bar's close time. Its age is
    ``signal.ts - reference_ts`` (the market's clock, so a replay is judged as live
    trading; 0 when the reference is newer than the signal's bar); older than
    RISK_REFERENCE_PRICE_MAX_AGE_SECONDS, or no reference at all, denies the order (check
    "reference_price"). Raises ``ValueError`` (nothing recorded) for a ``reference_price``
    without a timezone-aware ``reference_ts``.

    ``savepoint=False`` (the engine): no savepoint of its own inside the caller's
    transaction; an error then rolls back the caller's whole transaction.
    """
    if reference_price is not None and (reference_ts is None or reference_ts.utcoffset() is None):
        raise ValueError(
            f"decision_make: reference_price={reference_price} needs a timezone-aware "
            f"reference_ts (the time that price was seen), got {reference_ts!r}"
        )
    # Atomic on its own (a savepoint inside a caller's transaction), or with
    # ``savepoint=False`` simply part of the caller's transaction: the engine's bar, where an
    # error rolls the whole bar back anyway (two round trips fewer on the order's path).
    with transaction.atomic(savepoint=savepoint):
        return _decision_make(
            account=account,
            signal=signal,
            strategy=strategy,
            strategy_params=strategy_params,
            stake=stake,
            source=source,
            reference_price=reference_price,
            reference_ts=reference_ts,
            timeframe=timeframe,
        )


def _decision_make(
    *,
    account: Account,
    signal: Signal,
    strategy: str,
    strategy_params: dict[str, Any],
    stake: Decimal,
    source: str,
    reference_price: Decimal | None,
    reference_ts: datetime | None,
    timeframe: str | None,
) -> DecisionOutcome:
    # Instrument, mode, position, working orders, limits, the account's positions and
    # recent orders and, without a reference price from the caller, the last stored close:
    # one round trip (the hot path).
    now = timezone.now()
    known = decision_inputs(
        account_id=account.pk,
        symbol=signal.instrument,
        open_statuses=OPEN_STATUSES,
        now=now,
        last_close=reference_price is None,
        timeframe=timeframe,
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

    if reference_price is None:
        reference_price, reference_ts = known.last_close, known.last_close_ts
    age = (
        max(0.0, (signal.ts - reference_ts).total_seconds())
        if reference_price is not None and reference_ts is not None
        else None
    )
    ctx = risk_context_for(
        known=known,
        mode=mode,
        # No reference: the order is valued at its decision price (and denied for it).
        last_price=reference_price if age is not None else signal.price,
        position_quantity=position_qty,
        limits=limits,
        now=now,
        reference_ts=reference_ts if age is not None else None,
        reference_age_seconds=age,
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
    if risk.approved:
        from apps.trading.tasks import order_send as order_send_task

        # Registered first, so it runs first on commit: the order leaves before the panel's
        # broadcasts are built (each serializes its payload in this thread).
        order_id = order.pk
        transaction.on_commit(lambda: _enqueue_send(order_send_task, order_id))
    decision = decision_record(
        checks=checks, action=action, order_ids=[order.client_order_id], **common
    )
    realtime.broadcast_decision(decision)
    realtime.broadcast_order(order)
    return DecisionOutcome(decision, order)


def _enqueue_send(task: Any, order_id: int) -> None:
    """Hand a committed order to the execution queue; if the queue is down, the outbox sweep
    (apps.trading.services.outbox.orders_outbox_sweep) sends it later, or refuses it when stale."""
    try:
        task.delay(order_id=order_id)
    except Exception:  # noqa: BLE001 - the order is recorded; never lose the engine over it
        logger.exception(
            "order %s recorded but not enqueued (queue unavailable): the outbox sweep retries",
            order_id,
        )
