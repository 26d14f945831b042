"""Risk reads: the pre-trade context, the risk overview of the panel, incidents, alerts,
and the hypothetical P&L of OBSERVATION decisions."""

from __future__ import annotations

import time as _time
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection

from apps.accounts.models import Account
from apps.core.realtime import jsonable
from apps.model.accounting import Position as PositionValue
from apps.model.orders import Fill as FillValue
from apps.model.orders import OrderStatus
from apps.model.values import Side
from apps.risk.domain.checks import RecentOrder, RiskContext, RiskLimits, limits_as_strings
from apps.risk.domain.metrics import (
    align_daily_closes,
    correlation_matrix,
    historical_var,
    parse_day_boundary,
)
from apps.risk.domain.modes import SystemMode
from apps.risk.models import EquityMonitor, HypotheticalTrade, Incident
from apps.trading.models import Order, Position

_ZERO = Decimal(0)
_MONEY = Decimal("1e-12")
_RATIO = Decimal("1e-8")
VAR_CACHE_SECONDS = 60.0
_var_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}


# --- pre-trade context --------------------------------------------------------------------


_RISK_CONTEXT_SQL: list[str] = []


def _risk_context_sql() -> str:
    """The account's open positions and its orders since ``since`` (not DENIED), one
    statement; tables from the models, values as parameters."""
    if not _RISK_CONTEXT_SQL:
        position, order = Position._meta.db_table, Order._meta.db_table
        instrument = Order._meta.get_field("instrument").related_model._meta.db_table
        _RISK_CONTEXT_SQL.append(f"""
            SELECT false, p."instrument_id", NULL::varchar, NULL::varchar, p."quantity",
                   p."last_price", p."avg_price", NULL::timestamptz, p."id"
              FROM "{position}" p
             WHERE p."account_id" = %(account)s AND p."quantity" <> 0
            UNION ALL
            SELECT true, NULL::bigint, i."symbol", o."side", o."quantity",
                   NULL::numeric, NULL::numeric, o."created_at", o."id"
              FROM "{order}" o JOIN "{instrument}" i ON i."id" = o."instrument_id"
             WHERE o."account_id" = %(account)s AND o."created_at" >= %(since)s
               AND o."status" <> %(denied)s
            ORDER BY 1, 2, 8 DESC, 9 DESC
        """)  # noqa: S608
    return _RISK_CONTEXT_SQL[0]


def risk_context_for(
    *,
    account_id: int,
    instrument_id: int,
    mode: SystemMode,
    last_price: Decimal,
    position_quantity: Decimal,
    limits: RiskLimits,
    now: datetime,
) -> RiskContext:
    """Everything ``order_check`` needs about the account, in one query (it is on the path
    from a bar to the order at the broker).

    Gross exposure marks each position at its last mark (this instrument at
    ``last_price``); the order flow counts the account's orders that were not DENIED
    (those never left) created in the last minute, and lists those inside the
    duplicate window. Positions come in instrument order, orders newest first.
    """
    gross = _ZERO
    open_positions = 0
    window = limits.duplicate_window_seconds or 0
    since = now - timedelta(seconds=max(60, window))
    recent: list[RecentOrder] = []
    last_minute = 0
    minute_ago = now - timedelta(seconds=60)
    dup_since = now - timedelta(seconds=window)
    with connection.cursor() as cursor:
        cursor.execute(
            _risk_context_sql(),
            {"account": account_id, "since": since, "denied": OrderStatus.DENIED.value},
        )
        rows = cursor.fetchall()
    for is_order, inst_id, symbol, side, quantity, mark, avg, created_at, _id in rows:
        if not is_order:
            open_positions += 1
            price = last_price if inst_id == instrument_id else (mark or avg)
            gross += abs(quantity) * price
            continue
        if created_at >= minute_ago:
            last_minute += 1
        if created_at >= dup_since:
            recent.append(RecentOrder(symbol, Side(side), quantity, created_at))
    return RiskContext(
        mode=mode,
        last_price=last_price,
        position_quantity=position_quantity,
        gross_exposure=gross,
        open_positions=open_positions,
        orders_last_minute=last_minute,
        recent_orders=tuple(recent),
        now=now,
    )


# --- lists --------------------------------------------------------------------------------


def incident_list() -> list[Incident]:
    """Every incident, newest first, with the mode change that opened it."""
    return list(Incident.objects.select_related("mode_change").order_by("-opened_at", "-id"))


# --- market data for VaR and correlations -------------------------------------------------


# Per (instrument, timeframe) series, the last bar of each trading day, found by one
# backward probe of the primary key (instrument_id, timeframe, ts) per day: a year of
# 1-minute bars costs ~250 index probes per series, not a scan and sort of ~360,000 rows.
# The series are listed by a skip scan of the same index (recursive CTE), not a DISTINCT.
_DAILY_CLOSES_SQL = """
WITH RECURSIVE series AS (
    (SELECT instrument_id, timeframe FROM marketdata_bar
     WHERE instrument_id = ANY(%(ids)s) ORDER BY instrument_id, timeframe LIMIT 1)
    UNION ALL
    SELECT n.instrument_id, n.timeframe FROM series s, LATERAL (
        SELECT instrument_id, timeframe FROM marketdata_bar b
        WHERE b.instrument_id = ANY(%(ids)s)
          AND (b.instrument_id, b.timeframe) > (s.instrument_id, s.timeframe)
        ORDER BY instrument_id, timeframe LIMIT 1
    ) n
), days AS (
    SELECT d::date AS day, (d::date + %(offset)s) AT TIME ZONE 'UTC' AS starts
    FROM generate_series(
        date_trunc('day', (%(since)s::timestamptz AT TIME ZONE 'UTC') - %(offset)s),
        date_trunc('day', (%(until)s::timestamptz AT TIME ZONE 'UTC') - %(offset)s),
        interval '1 day'
    ) AS d
)
SELECT DISTINCT ON (s.instrument_id, days.day) s.instrument_id, days.day, last.close
FROM series s CROSS JOIN days CROSS JOIN LATERAL (
    SELECT ts, close FROM marketdata_bar b
    WHERE b.instrument_id = s.instrument_id AND b.timeframe = s.timeframe
      AND b.ts >= greatest(days.starts, %(since)s::timestamptz)
      AND b.ts < days.starts + interval '1 day'
      AND b.ts <= %(until)s::timestamptz
    ORDER BY b.ts DESC LIMIT 1
) last
ORDER BY s.instrument_id, days.day, last.ts DESC
"""

_LAST_TS_SQL = """
WITH RECURSIVE series AS (
    (SELECT instrument_id, timeframe FROM marketdata_bar
     WHERE instrument_id = ANY(%(ids)s) ORDER BY instrument_id, timeframe LIMIT 1)
    UNION ALL
    SELECT n.instrument_id, n.timeframe FROM series s, LATERAL (
        SELECT instrument_id, timeframe FROM marketdata_bar b
        WHERE b.instrument_id = ANY(%(ids)s)
          AND (b.instrument_id, b.timeframe) > (s.instrument_id, s.timeframe)
        ORDER BY instrument_id, timeframe LIMIT 1
    ) n
)
SELECT max(last.ts) FROM series s CROSS JOIN LATERAL (
    SELECT ts FROM marketdata_bar b
    WHERE b.instrument_id = s.instrument_id AND b.timeframe = s.timeframe
    ORDER BY b.ts DESC LIMIT 1
) last
"""


def daily_closes(
    *, instrument_ids: list[int], days: int, until: datetime | None = None
) -> dict[int, dict[date, Decimal]]:
    """The last close of each trading day (RISK_DAY_BOUNDARY_UTC) per instrument, from stored bars.

    Any timeframe is used (the latest bar of the day wins, whichever timeframe it has);
    the window is the ``days`` trading days up to the newest stored bar (or ``until``).
    """
    if not instrument_ids:
        return {}
    boundary = parse_day_boundary(settings.RISK_DAY_BOUNDARY_UTC)
    offset = timedelta(hours=boundary.hour, minutes=boundary.minute)
    with connection.cursor() as cursor:
        if until is None:
            cursor.execute(_LAST_TS_SQL, {"ids": instrument_ids})
            until = cursor.fetchone()[0]
            if until is None:
                return {}
        since = until - timedelta(days=days + 1)
        cursor.execute(
            _DAILY_CLOSES_SQL,
            {"offset": offset, "ids": instrument_ids, "since": since, "until": until},
        )
        out: dict[int, dict[date, Decimal]] = defaultdict(dict)
        for instrument_id, day, close in cursor.fetchall():
            out[instrument_id][day] = close
    return dict(out)


def var_and_correlation(*, holdings: dict[str, tuple[int, Decimal]]) -> dict[str, Any]:
    """Historical 1-day VaR 95/99 and the correlation matrix of the held instruments.

    ``holdings``: symbol -> (instrument id, signed market value). Cached for
    VAR_CACHE_SECONDS per set of holdings (it reads many bars).
    """
    window = settings.RISK_VAR_WINDOW_DAYS
    key = (tuple(sorted((s, str(v)) for s, (_, v) in holdings.items())), window)
    cached = _var_cache.get(key)
    if cached is not None and _time.monotonic() - cached[0] < VAR_CACHE_SECONDS:
        return cached[1]
    ids = {symbol: inst_id for symbol, (inst_id, _) in holdings.items()}
    closes_by_id = daily_closes(instrument_ids=list(ids.values()), days=window)
    series = {symbol: closes_by_id.get(inst_id, {}) for symbol, inst_id in ids.items()}
    _, aligned = align_daily_closes(series)
    values = {symbol: value for symbol, (_, value) in holdings.items()}
    result = {
        "var": {
            "95": str(
                historical_var(holdings=values, daily_closes=aligned, confidence=Decimal("0.95"))
            ),
            "99": str(
                historical_var(holdings=values, daily_closes=aligned, confidence=Decimal("0.99"))
            ),
            "window_days": window,
            "observations": max(0, min((len(c) for c in aligned.values()), default=0) - 1),
        },
    }
    instruments, matrix = correlation_matrix(aligned)
    result["correlation"] = {"instruments": instruments, "matrix": matrix}
    if len(_var_cache) > 64:
        _var_cache.clear()
    _var_cache[key] = (_time.monotonic(), result)
    return result


# --- the overview -------------------------------------------------------------------------


def _account(account_name: str | None) -> Account | None:
    return Account.objects.filter(name=account_name or settings.ENGINE_ACCOUNT).first()


def risk_overview(account_name: str | None = None) -> dict[str, Any]:
    """The Risk page (JSON-ready): limits and ceilings, exposures, VaR, correlations,
    drawdown and today's P&L (fractions, as strings), and the hypothetical P&L."""
    from apps.risk.services import limit_ranges, risk_limits_for

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
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.symbol, (SELECT b.close FROM marketdata_bar b WHERE b.instrument_id = i.id
                              ORDER BY b.ts DESC LIMIT 1)
            FROM marketdata_instrument i WHERE i.symbol = ANY(%s)
            """,
            [symbols],
        )
        marks = {symbol: close for symbol, close in cursor.fetchall() if close is not None}
    missing = [s for s in symbols if s not in marks]
    if missing:
        for symbol, mark in Position.objects.filter(
            instrument__symbol__in=missing, last_price__isnull=False
        ).values_list("instrument__symbol", "last_price"):
            marks.setdefault(symbol, mark)
    return marks
