"""The paper broker: a simulated broker with its own book, kept apart from ours.

What a real broker keeps, the paper broker keeps in its own tables (``PaperAccount``,
``PaperOrder``, ``PaperFill``, ``PaperPosition``; ``apps.trading.models``): the orders it
received, the executions it made, the positions and the cash they add up to. Every
query (open orders, order status, fills, positions, balances) reads only those tables,
never our ``Order``, ``Fill``, ``Position`` or ``Account.cash``; so reconciliation
against the paper broker finds a doctored row on either side as it would at a real
broker.

- ``submit`` records the order (idempotent on the client order id: a resubmit never
  makes a second order); ``cancel`` cancels it in the paper book, at once.
- ``match(bar)`` fills the working paper orders of the bar's instrument with the pure
  ``PaperMatcher`` the backtest uses (a decision on bar N fills on bar N+1's open at the
  earliest), books each fill into the paper book and returns the fills for our side
  (``fill_apply``). A bar at or before the last one matched for an account (a bar
  processed twice) books nothing again: it returns the fills that bar made.
- ``fill_at_mark`` (the kill switch's emergency close) fills at once at the mark and
  books it too.

The book is persisted, so an engine restart keeps it. The paper book of an account is
created on first use with the account's starting cash (the migration that introduced it
opened the books of existing accounts from their state then).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Account, Broker
from apps.model.accounting import Position as PositionValue
from apps.model.bars import Bar
from apps.model.orders import Fill, OrderState, OrderStatus
from apps.model.paper import PaperMatcher, SlippageModel, paper_market_fill
from apps.model.values import OrderType, Side
from apps.model.venues import (
    BrokerBalance,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    ConnectionState,
    VenueAck,
    VenueConfigurationError,
    VenueOrder,
    VenueRejected,
)
from apps.trading.models import PaperAccount, PaperClock, PaperFill, PaperOrder, PaperPosition
from apps.trading.services.common import money

logger = logging.getLogger(__name__)

# The paper book's working statuses: the orders the matcher may fill (a paper cancel is
# final at once, and the paper broker acknowledges an order as it records it).
WORKING = (OrderStatus.ACCEPTED.value, OrderStatus.PARTIALLY_FILLED.value)
KILL_TRADE_SUFFIX = "-kill"


def paper_slippage() -> SlippageModel:
    """The paper broker's slippage (PAPER_SLIPPAGE_BPS)."""
    return SlippageModel(bps=settings.PAPER_SLIPPAGE_BPS)


def paper_fill_terms(reference: Decimal, side: Side, quantity: Decimal) -> tuple[Decimal, Decimal]:
    """Price and fee of a paper market fill at ``reference`` with the paper settings
    (``apps.model.paper.paper_market_fill``: the matcher's rule)."""
    return paper_market_fill(
        reference, side, quantity, slippage=paper_slippage(), fee_rate=settings.PAPER_FEE_RATE
    )


def paper_book_get_or_create(account: Account) -> PaperAccount:
    """The paper broker's account of ``account``, opened with its starting cash on first use."""
    book = PaperAccount.objects.filter(account_id=account.pk).first()
    if book is None:
        book, created = PaperAccount.objects.get_or_create(
            account_id=account.pk,
            defaults={"currency": account.currency, "cash": account.starting_cash},
        )
        if created:
            logger.info(
                "paper book of %s opened with %s %s",
                account.name,
                account.starting_cash,
                account.currency,
            )
    return book


def _order_problem(order: VenueOrder) -> str:
    """Why the paper broker refuses ``order`` ("" when it takes it)."""
    if order.quantity <= 0:
        return f"quantity must be positive, got {order.quantity}"
    if order.order_type is OrderType.LIMIT and (
        order.limit_price is None or order.limit_price <= 0
    ):
        return f"a limit order needs a positive limit price, got {order.limit_price}"
    if order.order_type is OrderType.MARKET and order.limit_price is not None:
        return f"a market order takes no limit price, got {order.limit_price}"
    return ""


def _broker_order(row: PaperOrder) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=row.broker_order_id,
        client_order_id=row.client_order_id,
        instrument=row.instrument,
        side=Side(row.side),
        order_type=OrderType(row.order_type),
        quantity=row.quantity,
        filled_quantity=row.filled_quantity,
        status=OrderStatus(row.status),
        limit_price=row.limit_price,
        avg_fill_price=row.avg_fill_price,
    )


def _fill_value(row: PaperFill) -> Fill:
    return Fill(
        trade_id=row.trade_id,
        client_order_id=row.order.client_order_id,
        instrument=row.order.instrument,
        side=Side(row.side),
        quantity=row.quantity,
        price=row.price,
        fee=row.fee,
        ts=row.ts,
    )


def _fills_book(books: dict[int, PaperAccount], booked: Iterable[tuple[PaperOrder, Fill]]) -> None:
    """Book fills into the paper book: order, position, cash (fee included), execution.

    The caller holds the lock of every paper account in ``books`` and has checked that no
    fill's trade id was booked before. Money is rounded as our side rounds it
    (``apps.trading.services.fills``), so both books agree to the last place.
    """
    now = timezone.now()
    positions: dict[tuple[int, str], PaperPosition] = {}
    rows: list[PaperFill] = []
    touched: dict[int, PaperOrder] = {}
    for order, fill in booked:
        book = books[order.account_id]
        key = (book.pk, fill.instrument)
        position = positions.get(key)
        if position is None:
            position, _ = PaperPosition.objects.get_or_create(
                account=book, instrument=fill.instrument
            )
            positions[key] = position
        value = PositionValue(
            instrument=fill.instrument, quantity=position.quantity, avg_price=position.avg_price
        )
        value.apply_fill(fill)
        position.quantity = value.quantity
        position.avg_price = money(value.avg_price)
        fee = money(fill.fee)
        notional = fill.quantity * fill.price
        book.cash = money(
            book.cash - notional - fee if fill.side is Side.BUY else book.cash + notional - fee
        )
        filled = order.filled_quantity + fill.quantity
        paid = (order.avg_fill_price or Decimal(0)) * order.filled_quantity
        order.avg_fill_price = money((paid + notional) / filled)
        order.filled_quantity = filled
        order.status = (
            OrderStatus.FILLED.value
            if filled >= order.quantity
            else OrderStatus.PARTIALLY_FILLED.value
        )
        order.updated_at = now
        touched[order.pk] = order
        rows.append(
            PaperFill(
                account=book,
                order=order,
                trade_id=fill.trade_id,
                side=fill.side.value,
                quantity=fill.quantity,
                price=fill.price,
                fee=fee,
                ts=fill.ts,
            )
        )
    for order in touched.values():
        order.save(update_fields=["filled_quantity", "avg_fill_price", "status", "updated_at"])
    for position in positions.values():
        position.save(update_fields=["quantity", "avg_price", "updated_at"])
    for book in {order.account_id: books[order.account_id] for order, _ in booked}.values():
        book.save(update_fields=["cash"])
    PaperFill.objects.bulk_create(rows)


def paper_fill_book(*, account: Account, fill: Fill) -> bool:
    """Book an execution the paper broker made outside its matching (a trade entered at
    the broker by hand; tests seed positions with it) into ``account``'s paper book, once.

    The order must be on the paper book (``PaperVenue.submit``). Returns False when the
    trade id was booked before (nothing changes).

    Raises
    ------
    VenueRejected
        The paper broker has no order ``fill.client_order_id`` for ``account``, or the
        fill is more than the order has left.
    """
    with transaction.atomic():
        book = PaperVenue(account)._locked_book()
        if PaperFill.objects.filter(trade_id=fill.trade_id).exists():
            return False
        row = PaperOrder.objects.filter(account=book, client_order_id=fill.client_order_id).first()
        if row is None:
            raise VenueRejected(
                f"paper order {fill.client_order_id} is unknown: it was never submitted",
                code="paper:unknown",
            )
        if row.status not in WORKING or fill.quantity > row.quantity - row.filled_quantity:
            raise VenueRejected(
                f"paper order {row.broker_order_id} ({row.status}, filled {row.filled_quantity} "
                f"of {row.quantity}) cannot take a fill of {fill.quantity}",
                code="paper:overfill",
            )
        _fills_book({book.pk: book}, [(row, fill)])
    return True


_CLOCK_SQL: list[str] = []
# Whether a bar has anything to match: [every paper account, one account] (built once).
_ANY_SQL: list[str] = []


def _clocks_advance(book_ids: list[int], instrument: str, ts: datetime) -> None:
    """The paper books ``book_ids`` matched ``instrument`` through ``ts`` (one statement)."""
    if not _CLOCK_SQL:
        table = f'"{PaperClock._meta.db_table}"'
        _CLOCK_SQL.append(
            f"""
            INSERT INTO {table} ("account_id", "instrument", "last_bar_ts")
            SELECT book, %s, %s FROM unnest(%s::bigint[]) AS book
            ON CONFLICT ("account_id", "instrument") DO UPDATE
               SET "last_bar_ts" = EXCLUDED."last_bar_ts"
             WHERE {table}."last_bar_ts" < EXCLUDED."last_bar_ts"
            """  # noqa: S608 - names from the model, values as parameters
        )
    with connection.cursor() as cursor:
        cursor.execute(_CLOCK_SQL[0], [instrument, ts, book_ids])


class PaperVenue:
    """The paper broker of ``account`` (``None``: only ``match``, for every paper account)."""

    name = Broker.PAPER.value
    # A cancel is final at once: the paper broker cancels in its own book as it is asked.
    cancel_is_immediate = True

    def __init__(self, account: Account | None = None) -> None:
        self.account = account

    # The paper broker is in-process: always connected.
    def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    def connection_state(self) -> ConnectionState:
        return ConnectionState.CONNECTED

    def heartbeat(self) -> None:
        return None

    # --- the paper book of this venue's account ------------------------------------------

    def _book(self) -> PaperAccount | None:
        return None if self.account is None else paper_book_get_or_create(self.account)

    def _locked_book(self) -> PaperAccount:
        """This account's paper book under its row lock (in a transaction): every change to
        a paper book is serialized on it."""
        if self.account is None:
            raise VenueConfigurationError("the paper venue takes orders for an account: none given")
        book = paper_book_get_or_create(self.account)
        return PaperAccount.objects.select_for_update().get(pk=book.pk)

    # --- orders ------------------------------------------------------------------------

    def submit(self, order: VenueOrder) -> VenueAck:
        """Record ``order`` in the paper book, ACCEPTED; the client order id is the
        idempotency key (a resubmit gets the first order's ack, nothing new)."""
        with transaction.atomic():
            book = self._locked_book()
            known = (
                PaperOrder.objects.filter(account=book, client_order_id=order.client_order_id)
                .values_list("broker_order_id", flat=True)
                .first()
            )
            if known is not None:
                logger.info("paper order %s resubmitted: already on the book", known)
                return VenueAck(broker_order_id=known)
            problem = _order_problem(order)
            if problem:
                raise VenueRejected(
                    f"paper broker refused {order.client_order_id}: {problem}", code="paper"
                )
            row = PaperOrder.objects.create(
                account=book,
                broker_order_id=f"paper-{order.client_order_id}",
                client_order_id=order.client_order_id,
                instrument=order.instrument,
                side=order.side.value,
                order_type=order.order_type.value,
                quantity=order.quantity,
                limit_price=order.limit_price,
                status=OrderStatus.ACCEPTED.value,
                # Eligible from the bar after the one the decision was made on.
                eligible_after=order.decision_bar_ts or timezone.now(),
            )
        return VenueAck(broker_order_id=row.broker_order_id)

    def _order_row(self, book: PaperAccount, order: VenueOrder) -> PaperOrder | None:
        match = Q(client_order_id=order.client_order_id)
        if order.broker_order_id:
            match |= Q(broker_order_id=order.broker_order_id)
        return PaperOrder.objects.filter(match, account=book).first()

    def cancel(self, order: VenueOrder) -> None:
        """Cancel ``order`` in the paper book, at once. An order the paper broker never
        received, or cancelled already, is left as it is; a filled one cannot be
        cancelled (``VenueRejected``)."""
        with transaction.atomic():
            book = self._locked_book()
            row = self._order_row(book, order)
            if row is None:
                logger.info("paper cancel of %s: never received", order.client_order_id)
                return
            if row.status in WORKING:
                row.status = OrderStatus.CANCELED.value
                row.save(update_fields=["status", "updated_at"])
            elif row.status == OrderStatus.FILLED:
                raise VenueRejected(
                    f"paper order {row.broker_order_id} is already filled", code="paper:filled"
                )

    def cancel_all(self) -> int:
        """Cancel every working order in the paper book; returns how many."""
        with transaction.atomic():
            book = self._locked_book()
            return PaperOrder.objects.filter(account=book, status__in=WORKING).update(
                status=OrderStatus.CANCELED.value, updated_at=timezone.now()
            )

    # --- queries: the paper book only --------------------------------------------------

    def order_status(self, order: VenueOrder) -> BrokerOrder | None:
        book = self._book()
        row = None if book is None else self._order_row(book, order)
        return None if row is None else _broker_order(row)

    def open_orders(self) -> list[BrokerOrder]:
        book = self._book()
        if book is None:
            return []
        rows = PaperOrder.objects.filter(account=book, status__in=WORKING).order_by("id")
        return [_broker_order(row) for row in rows]

    def fills_since(self, since: datetime) -> list[BrokerFill]:
        book = self._book()
        if book is None:
            return []
        rows = PaperFill.objects.filter(account=book, ts__gte=since).select_related("order")
        return [
            BrokerFill(
                trade_id=r.trade_id,
                broker_order_id=r.order.broker_order_id,
                client_order_id=r.order.client_order_id,
                instrument=r.order.instrument,
                side=Side(r.side),
                quantity=r.quantity,
                price=r.price,
                fee=r.fee,
                ts=r.ts,
            )
            for r in rows.order_by("ts", "id")
        ]

    def positions(self) -> list[BrokerPosition]:
        book = self._book()
        if book is None:
            return []
        rows = PaperPosition.objects.filter(account=book).exclude(quantity=0)
        return [
            BrokerPosition(instrument=r.instrument, quantity=r.quantity, avg_price=r.avg_price)
            for r in rows
        ]

    def balances(self) -> list[BrokerBalance]:
        book = self._book()
        if book is None:
            return []
        return [BrokerBalance(currency=book.currency, total=book.cash)]

    # --- fills ----------------------------------------------------------------------------

    def fill_at_mark(self, order: VenueOrder, *, mark: Decimal, ts: datetime) -> Fill | None:
        """The kill switch's emergency close: fill what is left of the order NOW at the mark.

        An emergency close does not wait for the next bar's open (as every other paper
        market order does): it fills completely at ``mark`` (the last bar's close) with
        the paper slippage applied against the order (a sell receives less) and the
        paper fee rate, booked in the paper book. Trade id ``paper-<client_order_id>-kill``:
        asked again, the same fill is returned and nothing is booked twice. None when
        nothing of the order is left to fill (a bar filled it, or it was cancelled).
        """
        with transaction.atomic():
            book = self._locked_book()
            trade_id = f"paper-{order.client_order_id}{KILL_TRADE_SUFFIX}"
            done = PaperFill.objects.select_related("order").filter(trade_id=trade_id).first()
            if done is not None:
                return _fill_value(done)
            row = self._order_row(book, order)
            if row is None:
                raise VenueRejected(
                    f"paper order {order.client_order_id} is unknown: it was never submitted",
                    code="paper:unknown",
                )
            if row.status not in WORKING:
                logger.info("paper close %s: nothing left (%s)", row.broker_order_id, row.status)
                return None
            side = Side(row.side)
            quantity = row.quantity - row.filled_quantity
            price, fee = paper_fill_terms(mark, side, quantity)
            fill = Fill(
                trade_id=trade_id,
                client_order_id=row.client_order_id,
                instrument=row.instrument,
                side=side,
                quantity=quantity,
                price=price,
                fee=fee,
                ts=ts,
            )
            _fills_book({book.pk: book}, [(row, fill)])
        return fill

    def match(self, bar: Bar) -> list[Fill]:
        """Fills that ``bar`` gives the working paper orders of its instrument, booked in the
        paper book (this venue's account, or every paper account when it has none).

        A paper book that already matched this instrument through ``bar.ts`` (the same bar
        processed twice) is not matched again: the fills it booked on that bar are
        returned instead (our side applies each once, by trade id).

        Most bars have nothing to match: one statement finds that out (no working order of
        the instrument in scope, and no book that matched it through ``bar.ts``) and nothing
        is locked or written. The clock then stays where it was, which is safe: an order
        placed later is eligible only for bars after its decision bar (or its submission
        time), so a replay of such a bar cannot fill it either.
        """
        scope = (
            Q(account__broker=Broker.PAPER)
            if self.account is None
            else Q(account_id=self.account.pk)
        )
        if not self._anything_to_match(bar):
            return []
        with transaction.atomic():
            books = {
                b.pk: b
                for b in PaperAccount.objects.select_for_update(of=("self",))
                .filter(scope)
                .order_by("id")
            }
            if not books:
                return []
            clocks = dict(
                PaperClock.objects.filter(
                    account_id__in=list(books), instrument=bar.instrument
                ).values_list("account_id", "last_bar_ts")
            )
            fresh = [pk for pk in books if pk not in clocks or clocks[pk] < bar.ts]
            replayed = [pk for pk in books if pk not in fresh]
            fills: list[Fill] = []
            if replayed:
                done = (
                    PaperFill.objects.filter(
                        account_id__in=replayed, order__instrument=bar.instrument, ts=bar.ts
                    )
                    .exclude(trade_id__endswith=KILL_TRADE_SUFFIX)
                    .select_related("order")
                    .order_by("id")
                )
                fills += [_fill_value(row) for row in done]
            if fresh:
                fills += self._match_fresh(books, fresh, bar)
                _clocks_advance(fresh, bar.instrument, bar.ts)
        return fills

    def _anything_to_match(self, bar: Bar) -> bool:
        """Whether a book in scope has a working order of the bar's instrument, or matched
        it through ``bar.ts`` already: one statement, built once (the ORM's compilation of
        the same query costs more than the query)."""
        if not _ANY_SQL:
            books = f'"{PaperAccount._meta.db_table}"'
            accounts = f'"{Account._meta.db_table}"'
            orders = f'"{PaperOrder._meta.db_table}"'
            clocks = f'"{PaperClock._meta.db_table}"'
            for scope in (
                f"b.account_id IN (SELECT a.id FROM {accounts} a WHERE a.broker = %(paper)s)",  # noqa: S608
                "b.account_id = %(account)s",
            ):
                _ANY_SQL.append(
                    f"""
                    SELECT EXISTS (
                        SELECT 1 FROM {orders} o JOIN {books} b ON b.id = o.account_id
                         WHERE o.instrument = %(instrument)s AND o.status = ANY(%(working)s)
                           AND {scope}
                    ) OR EXISTS (
                        SELECT 1 FROM {clocks} c JOIN {books} b ON b.id = c.account_id
                         WHERE c.instrument = %(instrument)s AND c.last_bar_ts >= %(ts)s
                           AND {scope}
                    )
                    """  # noqa: S608 - names from the models, values as parameters
                )
        params = {
            "paper": Broker.PAPER.value,
            "account": self.account.pk if self.account is not None else None,
            "instrument": bar.instrument,
            "working": list(WORKING),
            "ts": bar.ts,
        }
        with connection.cursor() as cursor:
            cursor.execute(_ANY_SQL[0 if self.account is None else 1], params)
            (found,) = cursor.fetchone()
        return bool(found)

    @staticmethod
    def _match_fresh(books: dict[int, PaperAccount], fresh: list[int], bar: Bar) -> list[Fill]:
        rows = {
            row.client_order_id: row
            for row in PaperOrder.objects.filter(
                account_id__in=fresh, instrument=bar.instrument, status__in=WORKING
            ).order_by("created_at", "id")
        }
        if not rows:
            return []
        matcher = PaperMatcher(
            fee_rate=settings.PAPER_FEE_RATE,
            slippage=paper_slippage(),
            volume_participation=settings.PAPER_VOLUME_PARTICIPATION,
        )
        for row in rows.values():
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
            matcher.submit(state, now=row.eligible_after)
        fills = matcher.on_bar(bar)
        if not fills:
            return []
        booked = set(
            PaperFill.objects.filter(trade_id__in=[f.trade_id for f in fills]).values_list(
                "trade_id", flat=True
            )
        )
        if booked:  # only a doctored clock lets a bar be matched twice: book nothing twice
            logger.error("paper fills %s were booked before: not booked again", sorted(booked))
        _fills_book(
            books, [(rows[f.client_order_id], f) for f in fills if f.trade_id not in booked]
        )
        return fills
