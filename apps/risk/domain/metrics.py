"""Risk monitoring math: drawdown, daily P&L, historical VaR, correlations (pure).

Inputs are passed in (equities, daily closes, holdings); nothing here reads a clock,
the database or settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from apps.risk.domain.modes import SystemMode

_ZERO = Decimal(0)
_ONE = Decimal(1)


# --- equity monitoring -------------------------------------------------------------------


def drawdown(peak: Decimal, equity: Decimal) -> Decimal:
    """Peak-to-trough drawdown as a fraction of the peak (0.15 = 15 %); 0 without a peak."""
    if peak <= 0 or equity >= peak:
        return _ZERO
    return (peak - equity) / peak


def daily_pnl_pct(start_of_day_equity: Decimal, equity: Decimal) -> Decimal:
    """P&L since the start of the day as a fraction of the start-of-day equity."""
    if start_of_day_equity <= 0:
        return _ZERO
    return (equity - start_of_day_equity) / start_of_day_equity


@dataclass(frozen=True, slots=True)
class MonitorThresholds:
    """Fractions: warn/kill on drawdown above, warn/pause on daily P&L below minus these."""

    drawdown_warn: Decimal = Decimal("0.10")
    drawdown_kill: Decimal = Decimal("0.15")
    daily_loss_warn: Decimal = Decimal("0.02")
    daily_loss_pause: Decimal = Decimal("0.03")


@dataclass(frozen=True, slots=True)
class MonitorAlert:
    severity: str  # "warning" | "critical"
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class MonitorVerdict:
    """What the rules ask for after one equity mark: alerts, and at most one mode change."""

    alerts: tuple[MonitorAlert, ...] = ()
    mode: SystemMode | None = None
    rule: str = ""  # "drawdown" | "daily_loss"
    reason: str = ""


def equity_verdict(
    *,
    drawdown_pct: Decimal,
    daily_pct: Decimal,
    day: date,
    mode: SystemMode,
    thresholds: MonitorThresholds,
    daily_pause_done: bool,
) -> MonitorVerdict:
    """Apply the drawdown and daily-loss rules to one mark.

    - drawdown > ``drawdown_kill``: KILL (unless already in KILL), critical alert;
      > ``drawdown_warn``: warning alert;
    - daily P&L < -``daily_loss_pause``: PAUSE, once per trading day
      (``daily_pause_done``) and only from NORMAL (OBSERVATION sends nothing, PAUSE
      and KILL are already stricter), critical alert; < -``daily_loss_warn``: warning.
    Alert codes of the daily rule carry the day, so each day alerts afresh.
    """
    alerts: list[MonitorAlert] = []
    mode_change: SystemMode | None = None
    rule = reason = ""
    if drawdown_pct > thresholds.drawdown_kill:
        text = f"drawdown {drawdown_pct:.4%} > {thresholds.drawdown_kill:.2%}: kill switch"
        alerts.append(MonitorAlert("critical", "drawdown_kill", text))
        if mode is not SystemMode.KILL:
            mode_change, rule, reason = SystemMode.KILL, "drawdown", text
    elif drawdown_pct > thresholds.drawdown_warn:
        text = f"drawdown {drawdown_pct:.4%} > {thresholds.drawdown_warn:.2%}"
        alerts.append(MonitorAlert("warning", "drawdown_warning", text))
    if daily_pct < -thresholds.daily_loss_pause:
        text = f"daily P&L {daily_pct:.4%} < -{thresholds.daily_loss_pause:.2%} on {day}: pause"
        alerts.append(MonitorAlert("critical", f"daily_loss_pause:{day}", text))
        if mode_change is None and mode is SystemMode.NORMAL and not daily_pause_done:
            mode_change, rule, reason = SystemMode.PAUSE, "daily_loss", text
    elif daily_pct < -thresholds.daily_loss_warn:
        text = f"daily P&L {daily_pct:.4%} < -{thresholds.daily_loss_warn:.2%} on {day}"
        alerts.append(MonitorAlert("warning", f"daily_loss_warning:{day}", text))
    return MonitorVerdict(tuple(alerts), mode_change, rule, reason)


# --- VaR and correlation -----------------------------------------------------------------


def align_daily_closes(
    series: Mapping[str, Mapping[date, Decimal]],
) -> tuple[list[date], dict[str, list[Decimal]]]:
    """Keep the days every instrument has a close for; return (days, closes per instrument)."""
    if not series:
        return [], {}
    common = set.intersection(*(set(closes) for closes in series.values()))
    days = sorted(common)
    return days, {symbol: [closes[d] for d in days] for symbol, closes in series.items()}


def daily_returns(closes: Sequence[Decimal]) -> list[Decimal]:
    """Simple returns ``c[t] / c[t-1] - 1`` (one fewer than the closes)."""
    return [closes[i] / closes[i - 1] - _ONE for i in range(1, len(closes))]


def historical_var(
    *,
    holdings: Mapping[str, Decimal],
    daily_closes: Mapping[str, Sequence[Decimal]],
    confidence: Decimal,
) -> Decimal:
    """One-day Value at Risk by historical simulation, as a positive amount.

    Method: the current holdings (signed market value per instrument, in the account
    currency) are revalued under each past day's returns. For each day t in the
    window, scenario P&L_t = sum_i value_i * r_i,t with r_i,t = close_i,t /
    close_i,t-1 - 1 (closes aligned on the days every instrument has). With the n
    scenario P&Ls sorted ascending p_(1) <= ... <= p_(n), VaR at confidence c is
    ``max(0, -p_(k))`` with ``k = ceil(n * (1 - c))`` (at least 1): the loss that
    only ``1 - c`` of past days exceeded. No scaling, no distribution assumed.

    Returns 0 with no holdings or fewer than two closes.
    """
    symbols = [s for s, value in holdings.items() if value and s in daily_closes]
    if not symbols:
        return _ZERO
    returns = {s: daily_returns(daily_closes[s]) for s in symbols}
    n = min(len(r) for r in returns.values())
    if n == 0:
        return _ZERO
    scenarios = sorted(sum((holdings[s] * returns[s][t] for s in symbols), _ZERO) for t in range(n))
    k = max(1, math.ceil(n * (1 - float(confidence)) - 1e-9))
    return max(_ZERO, -scenarios[k - 1])


def correlation_matrix(
    daily_closes: Mapping[str, Sequence[Decimal]],
) -> tuple[list[str], list[list[float | None]]]:
    """Pearson correlation of the instruments' daily returns (aligned closes in).

    Returns (instruments sorted, matrix). A pair where either series has no variance
    (or fewer than two returns) is None; the diagonal is 1.0 when the series varies.
    """
    symbols = sorted(daily_closes)
    returns = {s: [float(r) for r in daily_returns(daily_closes[s])] for s in symbols}
    stats: dict[str, tuple[float, float] | None] = {}
    for s in symbols:
        r = returns[s]
        if len(r) < 2:
            stats[s] = None
            continue
        mean = sum(r) / len(r)
        var = sum((x - mean) ** 2 for x in r)
        stats[s] = (mean, math.sqrt(var)) if var > 0 else None
    matrix: list[list[float | None]] = []
    for a in symbols:
        row: list[float | None] = []
        for b in symbols:
            sa, sb = stats[a], stats[b]
            if sa is None or sb is None:
                row.append(None)
                continue
            n = min(len(returns[a]), len(returns[b]))
            cov = sum((returns[a][t] - sa[0]) * (returns[b][t] - sb[0]) for t in range(n))
            row.append(1.0 if a == b else cov / (sa[1] * sb[1]))
        matrix.append(row)
    return symbols, matrix
