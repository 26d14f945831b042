"""The market-data server's reads, bounded and JSON-ready (typed for structured content)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from typing_extensions import TypedDict

from apps.audit.models import DecisionLog
from apps.core.realtime import jsonable
from apps.engine.selectors import plan_list
from apps.marketdata.models import Bar, FeedStatus, Instrument
from apps.marketdata.services import feed_payload
from apps.mcp.models import McpAgent
from apps.mcp.services import McpInputError, instrument_parse
from apps.ml.models import CalibrationSnapshot, Prediction
from apps.model.orders import OPEN_STATUSES
from apps.risk.services.modes import system_mode_get
from apps.trading import realtime
from apps.trading.models import Order

MAX_BARS = 500
MAX_DECISIONS = 100
TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")


class PlanInfo(TypedDict):
    account: str
    timeframe: str
    strategy: str
    params: dict[str, Any]
    stake: str
    active: bool


class InstrumentInfo(TypedDict):
    symbol: str
    base: str
    quote: str
    asset_class: str
    active: bool
    plans: list[PlanInfo]


class BarRow(TypedDict):
    ts: str
    open: str
    high: str
    low: str
    close: str
    volume: str


class BarsPage(TypedDict):
    instrument: str
    timeframe: str
    bars: list[BarRow]
    next_before: str | None  # pass as `before` for the previous page (None: no more)


class FeedInfo(TypedDict):
    feed: str
    last_update: str | None
    last_bar_ts: str | None
    age_seconds: float | None
    bars_accepted: int
    bars_rejected: int


def _limit(value: int, maximum: int, field: str) -> int:
    if value < 1 or value > maximum:
        raise McpInputError(field, f"must be between 1 and {maximum}, got {value}")
    return value


def _timeframe(value: str) -> str:
    if value not in TIMEFRAMES:
        raise McpInputError("timeframe", f"use one of {', '.join(TIMEFRAMES)}, got {value[:10]!r}")
    return value


def instruments_list() -> list[InstrumentInfo]:
    plans: dict[int, list[PlanInfo]] = {}
    for plan in plan_list():
        plans.setdefault(plan.instrument_id, []).append(
            PlanInfo(
                account=plan.account.name,
                timeframe=plan.timeframe,
                strategy=plan.strategy,
                params=dict(plan.params),
                stake=str(plan.stake),
                active=plan.active,
            )
        )
    return [
        InstrumentInfo(
            symbol=i.symbol,
            base=i.base,
            quote=i.quote,
            asset_class=i.asset_class,
            active=i.active,
            plans=plans.get(i.pk, []),
        )
        for i in Instrument.objects.order_by("symbol")
    ]


def instrument_detail(*, symbol: str) -> dict[str, Any]:
    inst = instrument_parse(symbol)
    info = next(i for i in instruments_list() if i["symbol"] == inst.symbol)
    last = Bar.objects.filter(instrument=inst, timeframe="1m").order_by("-ts").first()
    return {**info, "latest_bar_1m": _bar_row(last) if last else None}


def _bar_row(bar: Bar) -> BarRow:
    return BarRow(
        ts=bar.ts.isoformat(),
        open=str(bar.open),
        high=str(bar.high),
        low=str(bar.low),
        close=str(bar.close),
        volume=str(bar.volume),
    )


def bars_page(*, instrument: str, timeframe: str, limit: int, before: str | None) -> BarsPage:
    """Up to ``limit`` bars (at most MAX_BARS) ending before ``before`` (ISO time, UTC), oldest first."""
    inst = instrument_parse(instrument)
    tf = _timeframe(timeframe)
    n = _limit(limit, MAX_BARS, "limit")
    qs = Bar.objects.filter(instrument=inst, timeframe=tf)
    if before:
        try:
            edge = datetime.fromisoformat(before)
        except ValueError:
            raise McpInputError("before", f"not an ISO 8601 time: {before[:40]!r}") from None
        if edge.utcoffset() is None:
            raise McpInputError("before", "give a timezone (e.g. 2026-01-02T03:04:05+00:00)")
        qs = qs.filter(ts__lt=edge)
    rows = list(qs.order_by("-ts")[: n + 1])
    more = len(rows) > n
    rows = rows[:n]
    rows.reverse()
    return BarsPage(
        instrument=inst.symbol,
        timeframe=tf,
        bars=[_bar_row(b) for b in rows],
        next_before=rows[0].ts.isoformat() if more and rows else None,
    )


def feeds_freshness() -> list[FeedInfo]:
    now = timezone.now()
    out: list[FeedInfo] = []
    for status in FeedStatus.objects.order_by("feed"):
        payload = feed_payload(status)
        last = status.last_update
        out.append(
            FeedInfo(
                feed=status.feed,
                last_update=last.isoformat() if last else None,
                last_bar_ts=status.last_bar_ts.isoformat() if status.last_bar_ts else None,
                age_seconds=(now - last).total_seconds() if last else None,
                bars_accepted=int(str(payload["bars_accepted"])),
                bars_rejected=int(str(payload["bars_rejected"])),
            )
        )
    return out


def mode_get() -> str:
    return system_mode_get().value


def positions_summary(agent: McpAgent) -> dict[str, Any]:
    """The agent's account: positions and P&L totals (no secrets, no order entry)."""
    account = agent.account
    positions = [
        realtime.position_payload(p)
        for p in account.positions.select_related("instrument").order_by("instrument__symbol")
    ]
    return jsonable(
        {
            "account": account.name,
            "broker": account.broker,
            "positions": positions,
            "realized_pnl": sum((p.realized_pnl for p in account.positions.all()), start=0),
            "unrealized_pnl": sum(
                (p.unrealized_pnl or 0 for p in account.positions.all()), start=0
            ),
        }
    )


def orders_open(agent: McpAgent) -> list[dict[str, Any]]:
    orders = Order.objects.filter(account=agent.account, status__in=OPEN_STATUSES).select_related(
        "instrument"
    )
    return [jsonable(realtime.order_payload(o)) for o in orders.order_by("created_at")]


def ml_latest(*, instrument: str) -> dict[str, Any]:
    """The latest prediction's probability for the instrument and its model's last calibration."""
    inst = instrument_parse(instrument)
    prediction = (
        Prediction.objects.filter(instrument=inst.symbol)
        .select_related("model_version")
        .order_by("-bar_ts", "-id")
        .first()
    )
    if prediction is None:
        return {"instrument": inst.symbol, "prediction": None, "calibration": None}
    calibration = (
        CalibrationSnapshot.objects.filter(model_version=prediction.model_version)
        .order_by("-created_at")
        .first()
    )
    return jsonable(
        {
            "instrument": inst.symbol,
            "prediction": {
                "model_version": prediction.model_version.version,
                "bar_ts": prediction.bar_ts,
                "horizon": prediction.horizon,
                "probability": prediction.probability,
            },
            "calibration": None
            if calibration is None
            else {
                f.name: getattr(calibration, f.name)
                for f in CalibrationSnapshot._meta.concrete_fields
                if f.name not in ("id", "model_version")
            },
        }
    )


def decisions_list(
    *, agent: McpAgent, instrument: str | None, source: str | None, limit: int
) -> list[dict[str, Any]]:
    """The agent's account's latest decisions (newest first), optionally by instrument/source."""
    n = _limit(limit, MAX_DECISIONS, "limit")
    qs = DecisionLog.objects.filter(account=agent.account.name)
    if instrument:
        qs = qs.filter(instrument=instrument_parse(instrument).symbol)
    if source:
        qs = qs.filter(source=source[:64])
    return [
        {**jsonable(realtime.decision_payload(d)), "source": d.source, "checks": d.checks}
        for d in qs.order_by("-created_at", "-id")[:n]
    ]
