"""Trading reads: what the panel shows on first load (then events keep it live), the
pre-trade risk context of an order, the risk overview and the hypothetical P&L of
OBSERVATION (trading reads its books; risk supplies limits, VaR and verdicts)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, models

from apps.accounts.models import Account
from apps.audit.models import DecisionLog
from apps.core.realtime import jsonable
from apps.marketdata.models import Bar, FeedStatus, Instrument
from apps.marketdata.selectors import last_closes
from apps.marketdata.services import feed_payload
from apps.model.accounting import Position as PositionValue
from apps.model.orders import Fill as FillValue
from apps.model.orders import OrderStatus
from apps.model.values import Side
from apps.risk.domain.checks import RecentOrder, RiskContext, RiskLimits, limits_as_strings
from apps.risk.domain.modes import SystemMode
from apps.risk.models import EquityMonitor, HypotheticalTrade, RiskLimit, SystemState
from apps.risk.selectors import var_and_correlation
from apps.risk.services.limits import limit_ranges, risk_limits_for
from apps.risk.services.modes import system_state_get
from apps.trading import realtime
from apps.trading.models import EquitySnapshot, Fill, Order, Position

_ZERO = Decimal(0)
_MONEY = Decimal("1e-12")
_RATIO = Decimal("1e-8")
EQUITY_HISTORY_POINTS = 500
RECENT = 20


def overview_snapshot(account_name: str | None = None) -> dict[str, Any]:
    """The overview's initial state, in the same shapes as the live events (JSON-ready)."""
    name = account_name or settings.ENGINE_ACCOUNT
    account = Account.objects.filter(name=name).first()
    snapshot: dict[str, Any] = {
        "account": name,
        "mode": system_state_get().mode,
        "equity": None,
        "equity_history": [],
        "positions": [],
        "orders": [],
        "fills": [],
        "decisions": [
            realtime.decision_payload(d)
            for d in DecisionLog.objects.filter(account=name).order_by("-created_at", "-id")[
                :RECENT
            ]
        ],
        "feeds": [feed_payload(f) for f in FeedStatus.objects.order_by("feed")],
    }
    if account is not None:
        history = list(
            EquitySnapshot.objects.filter(account=account).order_by("-ts", "-id")[
                :EQUITY_HISTORY_POINTS
            ]
        )
        if history:
            snapshot["equity"] = realtime.equity_payload(history[0], account)
        snapshot["equity_history"] = [
            {"ts": s.ts, "equity": s.equity, "drawdown": s.drawdown} for s in reversed(history)
        ]
        snapshot["positions"] = [
            realtime.position_payload(p)
            for p in account.positions.select_related("instrument").order_by("instrument__symbol")
        ]
        snapshot["fills"] = [
            realtime.fill_payload(f, f.order)
            for f in Fill.objects.filter(account=account).select_related("order__instrument")[
                :RECENT
            ]
        ]
        snapshot["orders"] = [
            realtime.order_payload(o)
            for o in Order.objects.filter(account=account).select_related("instrument")[:RECENT]
        ]
    return jsonable(snapshot)


# --- the decision path's reads (apps.trading.services.decisions.decision_make) --------------------------
#
# Every round trip to PostgreSQL is on the path from a bar to the order at the broker, so the
# decision reads what it needs in one statement. The column lists come from the models, and
# the rows become model instances through ``Model.from_db``, as the ORM would build them.


def columns_sql(model: type[models.Model], alias: str) -> str:
    """The SELECT list of every concrete column of ``model`` under table alias ``alias``."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def instance_from_row(
    model: type[models.Model], row: Sequence[Any], start: int
) -> tuple[models.Model | None, int]:
    """The ``model`` instance whose columns (``columns_sql`` order) start at ``row[start]``,
    and the index after them; None when its primary key is NULL (an outer join found none)."""
    fields = model._meta.concrete_fields
    values = row[start : start + len(fields)]
    end = start + len(fields)
    if values[[f.attname for f in fields].index(model._meta.pk.attname)] is None:
        return None, end
    return model.from_db(connection.alias, [f.attname for f in fields], values), end


@dataclass(frozen=True)
class DecisionInputs:
    """What ``decision_make`` knows before it decides, read at one instant (one statement)."""

    instrument: Instrument
    mode: str | None  # None: the SystemState row does not exist yet
    position_quantity: Decimal
    working: bool  # an order of this account and instrument is still open
    limit: RiskLimit | None  # the account's RiskLimit row (None: the settings ceilings)
    # The instrument's last stored close and its bar's close time (None: not asked for, or
    # no bar stored).
    last_close: Decimal | None = None
    last_close_ts: datetime | None = None
    # The account's open positions: (instrument id, quantity, last mark, average price).
    positions: tuple[tuple[int, Decimal, Decimal | None, Decimal | None], ...] = ()
    # Its orders (not DENIED) created since ``now - max(60 s, duplicate window)``, newest first.
    orders: tuple[RecentOrder, ...] = ()


# A bar's close time from its open time and its timeframe label ("1m", "4h", "1d", "1w",
# "30s"); a label of another shape counts as closing when it opens.
_BAR_CLOSE_SQL = """b."ts" + CASE WHEN b."timeframe" ~ '^[0-9]{1,6}[smhdw]$'
    THEN left(b."timeframe", -1)::int * CASE right(b."timeframe", 1)
        WHEN 's' THEN interval '1 second' WHEN 'm' THEN interval '1 minute'
        WHEN 'h' THEN interval '1 hour' WHEN 'd' THEN interval '1 day'
        ELSE interval '1 week' END
    ELSE interval '0' END"""

_decision_sql: dict[str, str] = {}


def _decision_inputs_sql(reference: str) -> str:
    """The statement; ``reference`` says how it finds the last stored close: "" (it does
    not: the caller has a reference price), "timeframe" (the last bar of that timeframe:
    one backward probe of the primary key), "any" (the last bar to close over every stored
    timeframe of the instrument: a skip scan of the timeframes, one probe each).

    The risk context (open positions, recent orders) comes as two JSON arrays, numbers as
    text (exact decimals); the orders' window is ``max(60 s, the account's duplicate window
    raised to the settings floor)``, as ``risk_limits_from`` computes it.
    """
    if reference not in _decision_sql:
        bar = Bar._meta.db_table
        position, order = Position._meta.db_table, Order._meta.db_table
        if reference == "timeframe":
            last = f"""SELECT b."close", {_BAR_CLOSE_SQL} AS "close_ts"
                FROM "{bar}" b WHERE b."instrument_id" = i."id" AND b."timeframe" = %(tf)s
                ORDER BY b."ts" DESC LIMIT 1"""  # noqa: S608
        elif reference == "any":
            last = f"""WITH RECURSIVE tfs(tf) AS (
                    (SELECT b."timeframe" FROM "{bar}" b WHERE b."instrument_id" = i."id"
                      ORDER BY b."timeframe" LIMIT 1)
                    UNION ALL
                    SELECT (SELECT b."timeframe" FROM "{bar}" b
                             WHERE b."instrument_id" = i."id" AND b."timeframe" > tfs.tf
                             ORDER BY b."timeframe" LIMIT 1)
                      FROM tfs WHERE tfs.tf IS NOT NULL)
                SELECT lb."close", lb."close_ts" FROM tfs, LATERAL (
                    SELECT b."close", {_BAR_CLOSE_SQL} AS "close_ts" FROM "{bar}" b
                     WHERE b."instrument_id" = i."id" AND b."timeframe" = tfs.tf
                     ORDER BY b."ts" DESC LIMIT 1) lb
                WHERE tfs.tf IS NOT NULL
                ORDER BY lb."close_ts" DESC LIMIT 1"""  # noqa: S608
        else:
            last = "SELECT NULL::numeric AS close, NULL::timestamptz AS close_ts"
        _decision_sql[reference] = f"""
            SELECT {columns_sql(Instrument, "i")}, {columns_sql(RiskLimit, "rl")},
                (SELECT s."mode" FROM "{SystemState._meta.db_table}" s WHERE s."id" = 1),
                (SELECT p."quantity" FROM "{position}" p
                  WHERE p."account_id" = %(account)s AND p."instrument_id" = i."id"),
                EXISTS (SELECT 1 FROM "{order}" o
                  WHERE o."account_id" = %(account)s AND o."instrument_id" = i."id"
                    AND o."status" = ANY(%(open)s)),
                ref."close", ref."close_ts",
                (SELECT json_agg(json_build_array(p."instrument_id", p."quantity"::text,
                                                  p."last_price"::text, p."avg_price"::text)
                                 ORDER BY p."instrument_id")
                   FROM "{position}" p
                  WHERE p."account_id" = %(account)s AND p."quantity" <> 0),
                (SELECT json_agg(json_build_array(oi."symbol", o."side", o."quantity"::text,
                                                  o."created_at")
                                 ORDER BY o."created_at" DESC, o."id" DESC)
                   FROM "{order}" o JOIN "{Instrument._meta.db_table}" oi
                     ON oi."id" = o."instrument_id"
                  WHERE o."account_id" = %(account)s AND o."status" <> %(denied)s
                    AND o."created_at" >= %(now)s - make_interval(secs => greatest(
                        60, %(floor)s, coalesce(rl."duplicate_window_seconds", 0))))
            FROM "{Instrument._meta.db_table}" i
            LEFT JOIN "{RiskLimit._meta.db_table}" rl ON rl."account_id" = %(account)s
            LEFT JOIN LATERAL ({last}) ref ON true
            WHERE i."symbol" = %(symbol)s
        """  # noqa: S608 - table and column names from the models, values as parameters
    return _decision_sql[reference]


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def decision_inputs(
    *,
    account_id: int,
    symbol: str,
    open_statuses: Sequence[str],
    now: datetime,
    last_close: bool = False,
    timeframe: str | None = None,
) -> DecisionInputs:
    """Everything ``decision_make`` reads, in one round trip (it is on the path from a bar
    to the order at the broker): the instrument, the system mode, the position, whether an
    order is working (one of ``open_statuses``), the risk limit row, the account's open
    positions and its orders of the last minute (or duplicate window, if longer) before
    ``now``; with ``last_close``, also the instrument's last stored close and its bar's
    close time (of ``timeframe``, else of whichever stored timeframe closed last).

    Raises ``Instrument.DoesNotExist`` when ``symbol`` is unknown, as ``Instrument.objects.get``.
    """
    reference = ("timeframe" if timeframe else "any") if last_close else ""
    with connection.cursor() as cursor:
        cursor.execute(
            _decision_inputs_sql(reference),
            {
                "account": account_id,
                "symbol": symbol,
                "open": list(open_statuses),
                "tf": timeframe,
                "now": now,
                "floor": settings.RISK_MIN_DUPLICATE_WINDOW_SECONDS,
                "denied": OrderStatus.DENIED.value,
            },
        )
        row = cursor.fetchone()
    if row is None:
        raise Instrument.DoesNotExist(f"Instrument matching query does not exist: {symbol!r}")
    instrument, at = instance_from_row(Instrument, row, 0)
    limit, at = instance_from_row(RiskLimit, row, at)
    mode, quantity, working, close, close_ts, positions, orders = row[at : at + 7]
    return DecisionInputs(
        instrument=instrument,
        mode=mode,
        position_quantity=quantity if quantity is not None else Decimal(0),
        working=bool(working),
        limit=limit,
        last_close=close,
        last_close_ts=close_ts,
        positions=tuple(
            (inst, Decimal(qty), _decimal(mark), _decimal(avg))
            for inst, qty, mark, avg in (positions or ())
        ),
        orders=tuple(
            RecentOrder(sym, Side(side), Decimal(qty), datetime.fromisoformat(created))
            for sym, side, qty, created in (orders or ())
        ),
    )


# --- pre-trade context --------------------------------------------------------------------


def risk_context_for(
    *,
    known: DecisionInputs,
    mode: SystemMode,
    last_price: Decimal,
    position_quantity: Decimal,
    limits: RiskLimits,
    now: datetime,
    reference_ts: datetime | None = None,
    reference_age_seconds: float | None = None,
) -> RiskContext:
    """Everything ``order_check`` needs about the account, from what ``decision_inputs``
    read (no query).

    ``last_price`` is the market's reference price (seen at ``reference_ts``,
    ``reference_age_seconds`` old; None: there is none, see ``RiskContext``). Gross
    exposure marks each position at its last mark (this instrument at ``last_price``);
    the order flow counts the account's orders that were not DENIED (those never left)
    created in the last minute, and lists those inside the duplicate window (newest
    first).
    """
    gross = _ZERO
    instrument_id = known.instrument.pk
    for inst_id, quantity, mark, avg in known.positions:
        price = last_price if inst_id == instrument_id else (mark or avg or _ZERO)
        gross += abs(quantity) * price
    window = limits.duplicate_window_seconds or 0
    minute_ago = now - timedelta(seconds=60)
    dup_since = now - timedelta(seconds=window)
    last_minute = 0
    recent: list[RecentOrder] = []
    for order in known.orders:
        if order.created_at >= minute_ago:
            last_minute += 1
        if order.created_at >= dup_since:
            recent.append(order)
    return RiskContext(
        mode=mode,
        last_price=last_price,
        position_quantity=position_quantity,
        gross_exposure=gross,
        open_positions=len(known.positions),
        orders_last_minute=last_minute,
        recent_orders=tuple(recent),
        now=now,
        reference_ts=reference_ts,
        reference_age_seconds=reference_age_seconds,
    )


# --- the overview -------------------------------------------------------------------------


def _account(account_name: str | None) -> Account | None:
    return Account.objects.filter(name=account_name or settings.ENGINE_ACCOUNT).first()


def risk_overview(account_name: str | None = None) -> dict[str, Any]:
    """The Risk page (JSON-ready): limits and ceilings, exposures, VaR, correlations,
    drawdown and today's P&L (fractions, as strings), and the hypothetical P&L."""
    account = _account(account_name)
    ceilings = limit_ranges()
    empty: dict[str, Any] = {
        "account": account_name or settings.ENGINE_ACCOUNT,
        "account_id": None,
        "limits": {},
        "ceilings": ceilings,
        "exposures": [],
        "exposure_by_asset_class": {},
        "gross_exposure": "0",
        "net_exposure": "0",
        "equity": None,
        "var": {"95": "0", "99": "0", "window_days": settings.RISK_VAR_WINDOW_DAYS},
        "correlation": {"instruments": [], "matrix": []},
        "drawdown": "0",
        "daily_pnl_pct": "0",
        "hypothetical": None,
    }
    if account is None:
        return jsonable(empty)
    limits = risk_limits_for(account_id=account.pk)
    positions = list(
        Position.objects.filter(account=account)
        .exclude(quantity=0)
        .select_related("instrument")
        .order_by("instrument__symbol")
    )
    monitor = EquityMonitor.objects.filter(account=account).first()
    market_value = sum(((p.last_price or p.avg_price) * p.quantity for p in positions), _ZERO)
    equity = monitor.equity if monitor is not None else account.cash + market_value
    exposures = []
    by_class: dict[str, Decimal] = defaultdict(lambda: _ZERO)
    gross = net = _ZERO
    holdings: dict[str, tuple[int, Decimal]] = {}
    for p in positions:
        value = ((p.last_price or p.avg_price) * p.quantity).quantize(_MONEY)
        gross += abs(value)
        net += value
        by_class[p.instrument.asset_class] += abs(value)
        holdings[p.instrument.symbol] = (p.instrument_id, value)
        exposures.append(
            {
                "instrument": p.instrument.symbol,
                "asset_class": p.instrument.asset_class,
                "quantity": p.quantity,
                "notional": value,
                "pct_of_equity": (abs(value) / equity).quantize(_RATIO) if equity > 0 else None,
            }
        )
    overview = {
        **empty,
        "account_id": account.pk,
        "limits": limits_as_strings(limits),
        "exposures": exposures,
        "exposure_by_asset_class": dict(by_class),
        "gross_exposure": gross,
        "net_exposure": net,
        "equity": equity,
        "drawdown": monitor.drawdown if monitor is not None else "0",
        "daily_pnl_pct": monitor.daily_pnl_pct if monitor is not None else "0",
        "hypothetical": hypothetical_pnl(account_name=account.name),
    }
    if holdings:
        overview.update(var_and_correlation(holdings=holdings))
    return jsonable(overview)


# --- OBSERVATION: hypothetical P&L --------------------------------------------------------


def hypothetical_pnl(account_name: str | None = None) -> dict[str, Any] | None:
    """P&L the OBSERVATION decisions would have made (all observation periods).

    Each filled hypothetical trade is applied in order to a pure Position per
    instrument (average cost, fees counted), and open hypothetical positions are
    marked at the instrument's last stored price (the latest bar close, else the
    account position's mark). Pending trades (decided, next bar not seen yet) are
    counted but not in the P&L. Amounts as Decimal, JSON-ready via ``jsonable``.
    """
    account = _account(account_name)
    if account is None:
        return None
    trades = list(
        HypotheticalTrade.objects.filter(account=account)
        .select_related("instrument")
        .order_by("fill_ts", "id")
    )
    books: dict[str, PositionValue] = {}
    fees = _ZERO
    pending = 0
    for trade in trades:
        if trade.fill_ts is None or trade.fill_price is None:
            pending += 1
            continue
        symbol = trade.instrument.symbol
        book = books.setdefault(symbol, PositionValue(instrument=symbol))
        book.apply_fill(
            FillValue(
                trade_id=f"hypo-{trade.pk}",
                client_order_id=f"hypo-{trade.pk}",
                instrument=symbol,
                side=Side(trade.side),
                quantity=trade.quantity,
                price=trade.fill_price,
                fee=trade.fee,
                ts=trade.fill_ts,
            )
        )
        fees += trade.fee
    marks = _last_prices(list(books))
    realized = sum((b.realized_pnl for b in books.values()), _ZERO)
    unrealized = _ZERO
    positions = []
    for symbol, book in sorted(books.items()):
        mark = marks.get(symbol)
        upnl = book.unrealized_pnl(mark) if (mark is not None and book.quantity) else _ZERO
        unrealized += upnl
        positions.append(
            {
                "instrument": symbol,
                "quantity": book.quantity,
                "avg_price": book.avg_price,
                "mark": mark,
                "realized_pnl": book.realized_pnl,
                "unrealized_pnl": upnl,
            }
        )
    return {
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "fees": fees,
        "total_pnl": realized + unrealized - fees,
        "trades": len(trades) - pending,
        "pending": pending,
        "positions": positions,
    }


def _last_prices(symbols: list[str]) -> dict[str, Decimal]:
    if not symbols:
        return {}
    marks = last_closes(symbols)
    missing = [s for s in symbols if s not in marks]
    if missing:
        for symbol, mark in Position.objects.filter(
            instrument__symbol__in=missing, last_price__isnull=False
        ).values_list("instrument__symbol", "last_price"):
            marks.setdefault(symbol, mark)
    return marks
