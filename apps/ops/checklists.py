"""The daily checklists (spec 10.1 pre-market 08:00, 10.3 post-market 18:30 Europe/Madrid).

Every item the system can check is checked; manual ones (the economic calendar) are
left "todo" for a person to tick on the checklist page.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from apps.accounts.models import Account
from apps.audit.models import DecisionAction, DecisionLog
from apps.brokers.selectors import discrepancies_open, last_reconciliation
from apps.model.orders import OrderStatus
from apps.notifications.models import Alert
from apps.ops import health
from apps.ops.models import ChecklistKind, ChecklistRun
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident, IncidentStatus
from apps.risk.services.modes import system_mode_get
from apps.trading.models import EquitySnapshot, Order, Position

UNAVAILABLE, TODO, DONE = "unavailable", "todo", "done"
SYMBOL = {"ok": "✅", "warn": "⚠️", "fail": "❌", UNAVAILABLE: "➖", TODO: "☐", DONE: "☑"}


def _item(
    key: str, label: str, status: str, detail: str, *, manual: bool = False
) -> dict[str, Any]:
    return {"key": key, "label": label, "status": status, "detail": detail, "manual": manual}


def _from_check(key: str, label: str, check: health.Check) -> dict[str, Any]:
    return _item(key, label, check.status, check.detail)


def trading_day_start(now: datetime) -> datetime:
    hh, mm = (int(x) for x in settings.RISK_DAY_BOUNDARY_UTC.split(":"))
    start = datetime.combine(now.date(), time(hh, mm), tzinfo=now.tzinfo)
    return start if start <= now else start - timedelta(days=1)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _mode_item() -> dict[str, Any]:
    mode = system_mode_get()
    status = {SystemMode.NORMAL: "ok", SystemMode.OBSERVATION: "warn"}.get(mode, "fail")
    return _item("mode", "System in NORMAL mode", status, mode.value.upper())


def _alerts_item(now: datetime) -> dict[str, Any]:
    last_post = (
        ChecklistRun.objects.filter(kind=ChecklistKind.POST_MARKET, created_at__lt=now)
        .order_by("-created_at")
        .first()
    )
    since = last_post.created_at if last_post else now - timedelta(hours=14)
    alerts = list(Alert.objects.filter(created_at__gte=since, created_at__lte=now))
    if not alerts:
        return _item(
            "overnight_alerts", "Overnight alerts", "ok", f"none since {since:%Y-%m-%d %H:%M} UTC"
        )
    by_sev: dict[str, int] = {}
    for a in alerts:
        by_sev[a.severity] = by_sev.get(a.severity, 0) + 1
    open_bad = [
        a.code for a in alerts if a.resolved_at is None and a.severity in ("error", "critical")
    ]
    status = "fail" if open_bad else "warn"
    detail = ", ".join(f"{n} {s}" for s, n in sorted(by_sev.items()))
    if open_bad:
        detail += f"; still open: {', '.join(sorted(set(open_bad)))}"
    return _item("overnight_alerts", "Overnight alerts", status, detail)


def _positions_item() -> dict[str, Any]:
    rows = list(Position.objects.exclude(quantity=0).select_related("account", "instrument"))
    if not rows:
        return _item("positions", "Open positions", "ok", "no open positions")
    detail = "; ".join(
        f"{p.account.name} {p.instrument.symbol} {_plain(p.quantity)} @ {_plain(p.avg_price)}"
        for p in rows
    )
    return _item("positions", "Open positions", "ok", f"{len(rows)}: {detail}")


def _pnl_item(now: datetime) -> dict[str, Any]:
    start = trading_day_start(now)
    parts = []
    for account in Account.objects.order_by("name"):
        snaps = EquitySnapshot.objects.filter(account=account, created_at__lte=now)
        last = snaps.order_by("-created_at", "-id").first()
        ref = (
            snaps.filter(created_at__lt=start).order_by("-created_at", "-id").first()
            or snaps.filter(created_at__gte=start).order_by("created_at", "id").first()
        )
        if last is None or ref is None:
            continue
        pnl: Decimal = last.equity - ref.equity
        pct = ((pnl / ref.equity * 100) if ref.equity else Decimal(0)).quantize(
            Decimal("0.01"), ROUND_HALF_UP
        )
        parts.append(f"{account.name} {pnl:+.2f} {account.currency} ({pct:+.2f} %)")
    if not parts:
        return _item("daily_pnl", "P&L of the day", UNAVAILABLE, "no equity marks today")
    return _item("daily_pnl", "P&L of the day", "ok", "; ".join(parts))


def _orders_vs_signals_item(now: datetime) -> dict[str, Any]:
    start = trading_day_start(now)
    decisions = list(
        DecisionLog.objects.filter(
            created_at__gte=start,
            created_at__lte=now,
            action__in=[DecisionAction.BUY, DecisionAction.SELL],
        ).order_by("created_at")
    )
    ids = {cid for d in decisions for cid in d.order_ids}
    orders = {o.client_order_id: o for o in Order.objects.filter(client_order_id__in=ids)}
    never_sent = {OrderStatus.INITIALIZED.value, OrderStatus.DENIED.value}
    problems = []
    for d in decisions:
        label = f"{d.bar_ts:%H:%M} {d.instrument} {d.action}"
        if not d.order_ids:
            problems.append(f"{label}: no order")
            continue
        for cid in d.order_ids:
            order = orders.get(cid)
            if order is None:
                problems.append(f"{label}: order {cid} missing")
            elif order.status in never_sent or order.submitted_at is None:
                problems.append(f"{label}: order {cid} never reached the broker ({order.status})")
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        return _item("orders_vs_signals", "Orders executed vs signals", "fail", shown)
    return _item(
        "orders_vs_signals",
        "Orders executed vs signals",
        "ok",
        f"{len(decisions)} buy/sell signal(s) today, each with its order sent to the broker",
    )


def _incidents_item(now: datetime) -> dict[str, Any]:
    start = trading_day_start(now)
    open_ = list(Incident.objects.filter(status=IncidentStatus.OPEN))
    today = Incident.objects.filter(opened_at__gte=start).count()
    if open_:
        undocumented = [
            f"#{i.pk}" for i in open_ if not (i.what_happened and i.cause and i.action_taken)
        ]
        detail = f"{len(open_)} open ({today} opened today)"
        if undocumented:
            detail += f"; to document: {', '.join(undocumented)}"
        return _item("incidents", "Incidents documented", "warn", detail)
    return _item("incidents", "Incidents documented", "ok", f"none open ({today} opened today)")


def _reconciliation_item(now: datetime) -> dict[str, Any]:
    label = "Reconciliation succeeded"
    run = last_reconciliation()
    open_ = discrepancies_open()
    if run is None:
        return _item(
            "reconciliation", label, "fail", "no reconciliation has run: `manage.py reconcile`"
        )
    age = now - run.finished_at
    detail = (
        f"last run #{run.pk} ({run.trigger}) {run.finished_at:%Y-%m-%d %H:%M} UTC: {run.outcome}"
    )
    if open_:
        return _item(
            "reconciliation", label, "fail", f"{detail}; {len(open_)} open discrepancies (panel)"
        )
    if run.outcome != "clean":
        return _item("reconciliation", label, "fail", f"{detail}: {run.error}"[:300])
    if age > timedelta(hours=1):
        return _item("reconciliation", label, "warn", f"{detail}; older than an hour")
    return _item("reconciliation", label, "ok", detail)


def checklist_items(*, kind: str, now: datetime) -> list[dict[str, Any]]:
    def safe(key: str, label: str, build: Any) -> dict[str, Any]:
        try:
            return build()
        except Exception as exc:  # noqa: BLE001 - one broken item must not lose the checklist
            return _item(
                key, label, "fail", f"could not check: {exc.__class__.__name__}: {exc}"[:300]
            )

    if kind == ChecklistKind.PRE_MARKET:
        return [
            safe("mode", "System in NORMAL mode", _mode_item),
            safe("overnight_alerts", "Overnight alerts", lambda: _alerts_item(now)),
            safe(
                "broker",
                "Broker connection",
                lambda: _from_check("broker", "Broker connection", health.check_broker()),
            ),
            safe(
                "data_feed",
                "Data feed active",
                lambda: _from_check("data_feed", "Data feed active", health.check_data_feed(now)),
            ),
            safe("positions", "Open positions", _positions_item),
            _item(
                "economic_calendar",
                "Economic calendar (risk events)",
                TODO,
                "check today's events; tick when done",
                manual=True,
            ),
        ]
    if kind == ChecklistKind.POST_MARKET:
        return [
            safe("daily_pnl", "P&L of the day", lambda: _pnl_item(now)),
            safe("reconciliation", "Reconciliation succeeded", lambda: _reconciliation_item(now)),
            safe(
                "orders_vs_signals",
                "Orders executed vs signals",
                lambda: _orders_vs_signals_item(now),
            ),
            safe(
                "backup",
                "Backup completed",
                lambda: _from_check("backup", "Backup completed", health.check_backup_recent(now)),
            ),
            safe("incidents", "Incidents documented", lambda: _incidents_item(now)),
        ]
    raise ValueError(f"unknown checklist kind {kind!r}: use pre or post")


def checklist_text(run: ChecklistRun) -> str:
    lines = [f"Tradebot {run.get_kind_display()} checklist {run.created_at:%Y-%m-%d %H:%M} UTC"]
    for item in run.items:
        lines.append(f"{SYMBOL.get(item['status'], '?')} {item['label']}: {item['detail']}")
    return "\n".join(lines)[:4000]
