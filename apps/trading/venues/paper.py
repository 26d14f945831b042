"""The paper broker: orders rest in the database, fills come from the bars.

Matching is the pure ``PaperMatcher`` that the backtest uses too. The book is
rebuilt from the database for each bar (open paper orders of the bar's
instrument), so the paper broker holds no state a crash could lose, and a bar
processed twice yields the same trade ids (applied once by ``fill_apply``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings

from apps.marketdata.domain.bars import Bar
from apps.trading.domain.orders import Fill, OrderState, OrderStatus
from apps.trading.domain.paper import PaperMatcher, SlippageModel
from apps.trading.domain.values import OrderType, Side
from apps.trading.models import Broker, Order
from apps.trading.venues.base import VenueAck

# SUBMITTED is on the book too: for the paper broker, "sent" and "received" are the
# same instant, and a fill may overtake the ack (SUBMITTED -> FILLED is a legal edge).
WORKING = (
    OrderStatus.SUBMITTED.value,
    OrderStatus.ACCEPTED.value,
    OrderStatus.PARTIALLY_FILLED.value,
)


class PaperVenue:
    name = Broker.PAPER.value
    # A cancel is final at once: the book is the database, a CANCELED order leaves it.
    cancel_is_immediate = True

    def submit(self, order: Order) -> VenueAck:
        return VenueAck(broker_order_id=f"paper-{order.client_order_id}")

    def cancel(self, order: Order) -> None:
        return None

    def fill_at_mark(self, order: Order, *, mark: Decimal, ts: datetime) -> Fill:
        """The kill switch's emergency close: fill the whole order NOW at the last mark.

        An emergency close does not wait for the next bar's open (as every other paper
        market order does): it fills completely at ``mark`` (the last bar's close) with
        the paper slippage applied against the order (a sell receives less) and the
        paper fee rate. Trade id ``paper-<client_order_id>-kill`` (applied once).
        """
        side = Side(order.side)
        price = SlippageModel(bps=settings.PAPER_SLIPPAGE_BPS).apply(mark, side)
        quantity = order.quantity - order.filled_quantity
        return Fill(
            trade_id=f"paper-{order.client_order_id}-kill",
            client_order_id=order.client_order_id,
            instrument=order.instrument.symbol,
            side=side,
            quantity=quantity,
            price=price,
            fee=quantity * price * settings.PAPER_FEE_RATE,
            ts=ts,
        )

    def match(self, bar: Bar) -> list[Fill]:
        """Fills that ``bar`` gives the working paper orders of its instrument."""
        rows = list(
            Order.objects.filter(
                account__broker=Broker.PAPER,
                instrument__symbol=bar.instrument,
                status__in=WORKING,
            ).order_by("created_at", "id")
        )
        if not rows:
            return []
        matcher = PaperMatcher(
            fee_rate=settings.PAPER_FEE_RATE,
            slippage=SlippageModel(bps=settings.PAPER_SLIPPAGE_BPS),
            volume_participation=settings.PAPER_VOLUME_PARTICIPATION,
        )
        for row in rows:
            state = OrderState(
                client_order_id=row.client_order_id,
                instrument=bar.instrument,
                side=Side(row.side),
                order_type=OrderType(row.order_type),
                quantity=row.quantity,
                limit_price=row.limit_price,
                status=OrderStatus.SUBMITTED,
                filled_quantity=row.filled_quantity,
            )
            # Eligible from the bar after the one the decision was made on.
            matcher.submit(state, now=row.decision_bar_ts or row.created_at)
        return matcher.on_bar(bar)
