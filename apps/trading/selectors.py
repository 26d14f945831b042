"""Trading reads: what the panel shows on first load (then events keep it live)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, models

from apps.accounts.models import Account
from apps.audit.models import DecisionLog
from apps.core.realtime import jsonable
from apps.marketdata.models import FeedStatus, Instrument
from apps.marketdata.services import feed_payload
from apps.risk.models import RiskLimit, SystemState
from apps.risk.services import system_state_get
from apps.trading import realtime
from apps.trading.models import EquitySnapshot, Fill, Order, Position

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


# --- the decision path's reads (apps.trading.services.decision_make) --------------------------
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


_decision_sql: str | None = None


def _decision_inputs_sql() -> str:
    global _decision_sql  # noqa: PLW0603 - built once from the models' metadata
    if _decision_sql is None:
        _decision_sql = f"""
            SELECT {columns_sql(Instrument, "i")}, {columns_sql(RiskLimit, "rl")},
                (SELECT s."mode" FROM "{SystemState._meta.db_table}" s WHERE s."id" = 1),
                (SELECT p."quantity" FROM "{Position._meta.db_table}" p
                  WHERE p."account_id" = %(account)s AND p."instrument_id" = i."id"),
                EXISTS (SELECT 1 FROM "{Order._meta.db_table}" o
                  WHERE o."account_id" = %(account)s AND o."instrument_id" = i."id"
                    AND o."status" = ANY(%(open)s))
            FROM "{Instrument._meta.db_table}" i
            LEFT JOIN "{RiskLimit._meta.db_table}" rl ON rl."account_id" = %(account)s
            WHERE i."symbol" = %(symbol)s
        """  # noqa: S608 - table and column names from the models, values as parameters
    return _decision_sql


def decision_inputs(
    *, account_id: int, symbol: str, open_statuses: Sequence[str]
) -> DecisionInputs:
    """The instrument, the system mode, the position, whether an order is working (one of
    ``open_statuses``) and the risk limit row, in one round trip.

    Raises ``Instrument.DoesNotExist`` when ``symbol`` is unknown, as ``Instrument.objects.get``.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _decision_inputs_sql(),
            {"account": account_id, "symbol": symbol, "open": list(open_statuses)},
        )
        row = cursor.fetchone()
    if row is None:
        raise Instrument.DoesNotExist(f"Instrument matching query does not exist: {symbol!r}")
    instrument, at = instance_from_row(Instrument, row, 0)
    limit, at = instance_from_row(RiskLimit, row, at)
    mode, quantity, working = row[at : at + 3]
    return DecisionInputs(
        instrument=instrument,
        mode=mode,
        position_quantity=quantity if quantity is not None else Decimal(0),
        working=bool(working),
        limit=limit,
    )
