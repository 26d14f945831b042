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

from apps.accounts.models import Account, Broker
from apps.model.bars import Bar
from apps.model.orders import SENT_OPEN_STATUSES, Fill, OrderState, OrderStatus
from apps.model.paper import PaperMatcher, SlippageModel, paper_market_fill
from apps.model.values import OrderType, Side
from apps.model.venues import (
    BrokerBalance,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    ConnectionState,
    VenueAck,
    VenueOrder,
)
from apps.trading.models import Order, Position

# SUBMITTED is on the book too: for the paper broker, "sent" and "received" are the
# same instant, and a fill may overtake the ack (SUBMITTED -> FILLED is a legal edge).
# The statuses the paper matcher can fill (a paper cancel is final at once).
WORKING = (
    OrderStatus.SUBMITTED.value,
    OrderStatus.ACCEPTED.value,
    OrderStatus.PARTIALLY_FILLED.value,
)


def paper_slippage() -> SlippageModel:
    """The paper broker's slippage (PAPER_SLIPPAGE_BPS)."""
    return SlippageModel(bps=settings.PAPER_SLIPPAGE_BPS)


def paper_fill_terms(reference: Decimal, side: Side, quantity: Decimal) -> tuple[Decimal, Decimal]:
    """Price and fee of a paper market fill at ``reference`` with the paper settings
    (``apps.model.paper.paper_market_fill``: the matcher's rule)."""
    return paper_market_fill(
        reference, side, quantity, slippage=paper_slippage(), fee_rate=settings.PAPER_FEE_RATE
    )


class PaperVenue:
    name = Broker.PAPER.value
    # A cancel is final at once: the book is the database, a CANCELED order leaves it.
    cancel_is_immediate = True

    def __init__(self, account: Account | None = None) -> None:
        self.account = account

    # The paper broker's book is our database: it is always connected, and what it
    # reports is what the database holds (reconciliation against it is trivially clean).
    def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    def connection_state(self) -> ConnectionState:
        return ConnectionState.CONNECTED

    def heartbeat(self) -> None:
        return None

    def submit(self, order: VenueOrder) -> VenueAck:
        return VenueAck(broker_order_id=f"paper-{order.client_order_id}")

    def cancel(self, order: VenueOrder) -> None:
        return None

    def cancel_all(self) -> int:
        return 0  # orders_cancel_all marks paper orders CANCELED itself

    # The columns a BrokerOrder is built from (values, not model instances: a
    # reconciliation reads thousands of open orders).
    _ORDER_COLUMNS = (
        "broker_order_id", "client_order_id", "instrument__symbol", "side", "order_type",
        "quantity", "filled_quantity", "status", "limit_price", "avg_fill_price",
    )  # fmt: skip

    @staticmethod
    def _broker_order(values: tuple) -> BrokerOrder:
        bid, cid, symbol, side, order_type, quantity, filled, status, limit, avg = values
        return BrokerOrder(
            broker_order_id=bid or f"paper-{cid}",
            client_order_id=cid,
            instrument=symbol,
            side=Side(side),
            order_type=OrderType(order_type),
            quantity=quantity,
            filled_quantity=filled,
            status=OrderStatus(status),
            limit_price=limit,
            avg_fill_price=avg,
        )

    def order_status(self, order: VenueOrder) -> BrokerOrder | None:
        values = (
            Order.objects.filter(account=self.account, client_order_id=order.client_order_id)
            .exclude(status=OrderStatus.INITIALIZED)
            .values_list(*self._ORDER_COLUMNS)
            .first()
        )
        return self._broker_order(values) if values else None

    def open_orders(self) -> list[BrokerOrder]:
        rows = Order.objects.filter(
            account=self.account, status__in=SENT_OPEN_STATUSES
        ).values_list(*self._ORDER_COLUMNS)
        return [self._broker_order(values) for values in rows]

    def fills_since(self, since: datetime) -> list[BrokerFill]:
        from apps.trading.models import Fill as FillRow

        rows = FillRow.objects.filter(account=self.account, ts__gte=since).select_related(
            "order__instrument"
        )
        return [
            BrokerFill(
                trade_id=r.trade_id,
                broker_order_id=r.order.broker_order_id or f"paper-{r.order.client_order_id}",
                client_order_id=r.order.client_order_id,
                instrument=r.order.instrument.symbol,
                side=Side(r.side),
                quantity=r.quantity,
                price=r.price,
                fee=r.fee,
                ts=r.ts,
            )
            for r in rows
        ]

    def positions(self) -> list[BrokerPosition]:
        rows = Position.objects.filter(account=self.account).exclude(quantity=0)
        return [
            BrokerPosition(
                instrument=r.instrument.symbol, quantity=r.quantity, avg_price=r.avg_price
            )
            for r in rows.select_related("instrument")
        ]

    def balances(self) -> list[BrokerBalance]:
        if self.account is None:
            return []
        account = Account.objects.get(pk=self.account.pk)
        return [BrokerBalance(currency=account.currency, total=account.cash)]

    def fill_at_mark(self, order: VenueOrder, *, mark: Decimal, ts: datetime) -> Fill:
        """The kill switch's emergency close: fill the whole order NOW at the last mark.

        An emergency close does not wait for the next bar's open (as every other paper
        market order does): it fills completely at ``mark`` (the last bar's close) with
        the paper slippage applied against the order (a sell receives less) and the
        paper fee rate. Trade id ``paper-<client_order_id>-kill`` (applied once).
        """
        side = order.side
        quantity = order.quantity  # a closing order is new: nothing of it has filled yet
        price, fee = paper_fill_terms(mark, side, quantity)
        return Fill(
            trade_id=f"paper-{order.client_order_id}-kill",
            client_order_id=order.client_order_id,
            instrument=order.instrument,
            side=side,
            quantity=quantity,
            price=price,
            fee=fee,
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
            slippage=paper_slippage(),
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
