"""Stress scenarios against a portfolio and its risk limits (pure).

The quarterly stress test (operations spec 7.1, "Stress testing | Trimestral | Mercado
cerrado | 2h") revalues each account's current holdings under extreme but plausible
moves and asks what the risk rules would do: the drawdown and daily-loss verdict
(``equity_verdict``), the limits a shocked book would break, and whether the loss stays
inside the kill level. The kill switch caps losses only when it can act during the move;
a gap, a flash crash or a broker outage jumps past it, which is what this measures.

Two kinds of scenario:

- *price shocks* (``ShockScenario``): one price move per asset class, applied to every
  holding of that class (signed: a short gains on a fall), then every position is closed
  at the shocked price paying ``fee_rate + slippage_bps``;
- *VaR-based* losses (``var_loss_result``): a volatility spike scales the diversified
  1-day historical VaR 99 %, correlation-to-1 sums the holdings' standalone VaRs (no
  diversification left).

Historical shock sizes come from recorded bars through the statistics below
(``max_drawdown``, ``worst_gap``, ``worst_bar_drop``, ``worst_window_move``,
``volatility_ratio``). Money is Decimal throughout; nothing here reads a clock, a file,
the database or settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from apps.risk.domain.checks import RiskLimits
from apps.risk.domain.metrics import (
    MonitorThresholds,
    daily_returns,
    drawdown,
    equity_verdict,
    historical_var,
)
from apps.risk.domain.modes import SystemMode

_ZERO = Decimal(0)
_ONE = Decimal(1)
_BPS = Decimal("0.0001")

OK, WARN, FAIL, NOT_APPLICABLE = "ok", "warn", "fail", "n/a"
_RANK = {NOT_APPLICABLE: 0, OK: 1, WARN: 2, FAIL: 3}


# --- statistics of recorded bars -----------------------------------------------------------


def max_drawdown(closes: Sequence[Decimal]) -> Decimal:
    """Worst peak-to-trough move of a close series, as a negative fraction (0 if none).

    Parameters
    ----------
    closes
        Closes in time order.
    """
    peak = None
    worst = _ZERO
    for close in closes:
        peak = close if peak is None or close > peak else peak
        worst = min(worst, close / peak - _ONE)
    return worst


def worst_gap(opens: Sequence[Decimal], closes: Sequence[Decimal]) -> Decimal:
    """Worst open against the previous bar's close (an overnight gap), negative fraction.

    Parameters
    ----------
    opens, closes
        Same-length series in time order.
    """
    moves = [opens[i] / closes[i - 1] - _ONE for i in range(1, len(opens))]
    return min([_ZERO, *moves])


def worst_bar_drop(opens: Sequence[Decimal], lows: Sequence[Decimal]) -> Decimal:
    """Worst fall from a bar's open to its low (an intrabar flash crash), negative fraction."""
    return min([_ZERO, *(low / open_ - _ONE for open_, low in zip(opens, lows, strict=True))])


def worst_window_move(closes: Sequence[Decimal], bars: int) -> Decimal:
    """Worst close-to-close move over ``bars`` consecutive bars, negative fraction.

    Parameters
    ----------
    closes
        Closes in time order.
    bars
        Window length in bars (4 hourly bars: what a 4-hour outage lets happen).
    """
    if bars < 1:
        raise ValueError(f"window of {bars} bars: use 1 or more")
    moves = [closes[i + bars] / closes[i] - _ONE for i in range(len(closes) - bars)]
    return min([_ZERO, *moves])


def _stdev(values: Sequence[Decimal]) -> Decimal:
    n = len(values)
    if n < 2:
        raise ValueError(f"a standard deviation needs 2 or more returns, got {n}")
    mean = sum(values, _ZERO) / n
    return (sum(((v - mean) ** 2 for v in values), _ZERO) / (n - 1)).sqrt()


def volatility_ratio(calm: Sequence[Decimal], stressed: Sequence[Decimal]) -> Decimal:
    """Sample standard deviation of the stressed period's returns over the calm period's.

    Parameters
    ----------
    calm, stressed
        Closes of each period in time order (returns are taken within each).
    """
    base = _stdev(daily_returns(calm))
    if base == 0:
        raise ValueError("the calm period has no variance: cannot scale by it")
    return _stdev(daily_returns(stressed)) / base


# --- the portfolio --------------------------------------------------------------------------


@dataclass(frozen=True)
class Holding:
    """One open position marked at ``price``; ``quantity`` is signed (short < 0)."""

    instrument: str
    asset_class: str
    quantity: Decimal
    price: Decimal

    @property
    def value(self) -> Decimal:
        """Signed market value."""
        return self.quantity * self.price


@dataclass(frozen=True)
class Portfolio:
    """An account's book: cash, holdings, the peak equity (drawdown reference) and limits."""

    account: str
    cash: Decimal
    holdings: tuple[Holding, ...]
    peak_equity: Decimal
    limits: RiskLimits

    @property
    def equity(self) -> Decimal:
        """Cash plus the holdings' signed market value."""
        return self.cash + sum((h.value for h in self.holdings), _ZERO)

    @property
    def gross_exposure(self) -> Decimal:
        """Sum of the holdings' absolute market values."""
        return sum((abs(h.value) for h in self.holdings), _ZERO)


# --- scenarios and results ------------------------------------------------------------------


@dataclass(frozen=True)
class ShockScenario:
    """A price move per asset class (``moves``; ``"*"`` for any other class).

    ``slippage_bps`` is what closing a position costs under the scenario's liquidity, on
    top of the fee rate.
    """

    key: str
    title: str
    moves: Mapping[str, Decimal]
    slippage_bps: Decimal
    source: str = ""

    def move_for(self, asset_class: str) -> Decimal:
        """The move applied to a holding of ``asset_class``."""
        if asset_class in self.moves:
            return self.moves[asset_class]
        if "*" in self.moves:
            return self.moves["*"]
        raise KeyError(f"scenario {self.key} has no move for asset class {asset_class!r}")


@dataclass(frozen=True)
class HoldingResult:
    """One holding under a scenario: its move, P&L and the cost of closing it."""

    instrument: str
    value_before: Decimal
    move: Decimal
    pnl: Decimal
    value_after: Decimal
    close_cost: Decimal


@dataclass(frozen=True)
class ScenarioResult:
    """What a scenario does to one account.

    ``loss`` = -(pnl - close_cost), positive when money is lost; ``drawdown_after`` is
    measured from the peak equity; ``mode`` is what the monitoring rules would switch
    to (KILL over the drawdown kill level, PAUSE under the daily-loss limit) and
    ``alerts`` their alert codes; ``breaches`` the limits the shocked book exceeds.
    """

    key: str
    title: str
    status: str
    equity_before: Decimal
    pnl: Decimal
    close_cost: Decimal
    loss: Decimal
    equity_after: Decimal
    loss_pct: Decimal
    drawdown_after: Decimal
    mode: str
    alerts: tuple[str, ...]
    breaches: tuple[str, ...]
    holdings: tuple[HoldingResult, ...] = ()
    source: str = ""
    note: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def _judge(
    *,
    portfolio: Portfolio,
    key: str,
    title: str,
    pnl: Decimal,
    close_cost: Decimal,
    thresholds: MonitorThresholds,
    day: date,
    breaches: tuple[str, ...] = (),
    holdings: tuple[HoldingResult, ...] = (),
    source: str = "",
    note: str = "",
    extra: Mapping[str, str] | None = None,
) -> ScenarioResult:
    before = portfolio.equity
    after = before + pnl - close_cost
    peak = max(portfolio.peak_equity, before)
    dd_after = drawdown(peak, after) if after > 0 else _ONE
    daily = (after - before) / before if before > 0 else _ZERO
    verdict = equity_verdict(
        drawdown_pct=dd_after,
        daily_pct=daily,
        day=day,
        mode=SystemMode.NORMAL,
        thresholds=thresholds,
        daily_pause_done=False,
    )
    if after <= 0 or dd_after > thresholds.drawdown_kill:
        status = FAIL
    elif dd_after > thresholds.drawdown_warn or breaches:
        status = WARN
    else:
        status = OK
    loss = close_cost - pnl
    return ScenarioResult(
        key=key,
        title=title,
        status=status,
        equity_before=before,
        pnl=pnl,
        close_cost=close_cost,
        loss=loss,
        equity_after=after,
        loss_pct=loss / before if before > 0 else _ZERO,
        drawdown_after=dd_after,
        mode=verdict.mode.value if verdict.mode is not None else "",
        alerts=tuple(a.code for a in verdict.alerts),
        breaches=breaches,
        holdings=holdings,
        source=source,
        note=note,
        extra=dict(extra or {}),
    )


def shock_result(
    *,
    portfolio: Portfolio,
    scenario: ShockScenario,
    fee_rate: Decimal,
    thresholds: MonitorThresholds,
    day: date,
) -> ScenarioResult:
    """Apply ``scenario``'s moves to every holding, then close everything at the shocked prices.

    Per holding: ``pnl = value * move``, ``value_after = value * (1 + move)``,
    ``close_cost = |value_after| * (fee_rate + slippage_bps / 10,000)``. The shocked book is
    checked against the limits before the close: a position worth more than
    ``max_position_notional`` or a gross exposure above ``max_gross_exposure`` is a breach
    (the pre-trade checks then let only exposure-reducing orders through).
    """
    cost_rate = fee_rate + scenario.slippage_bps * _BPS
    rows = []
    for h in portfolio.holdings:
        move = scenario.move_for(h.asset_class)
        after = h.value * (_ONE + move)
        rows.append(
            HoldingResult(
                instrument=h.instrument,
                value_before=h.value,
                move=move,
                pnl=h.value * move,
                value_after=after,
                close_cost=abs(after) * cost_rate,
            )
        )
    limits = portfolio.limits
    breaches = [
        f"{r.instrument} worth {abs(r.value_after):.2f} > max_position_notional "
        f"{limits.max_position_notional:.2f}"
        for r in rows
        if abs(r.value_after) > limits.max_position_notional
    ]
    gross_after = sum((abs(r.value_after) for r in rows), _ZERO)
    if limits.max_gross_exposure is not None and gross_after > limits.max_gross_exposure:
        breaches.append(
            f"gross exposure {gross_after:.2f} > max_gross_exposure {limits.max_gross_exposure:.2f}"
        )
    return _judge(
        portfolio=portfolio,
        key=scenario.key,
        title=scenario.title,
        pnl=sum((r.pnl for r in rows), _ZERO),
        close_cost=sum((r.close_cost for r in rows), _ZERO),
        thresholds=thresholds,
        day=day,
        breaches=tuple(breaches),
        holdings=tuple(rows),
        source=scenario.source,
    )


@dataclass(frozen=True)
class VarInputs:
    """Daily closes (aligned, per instrument) and the confidence of the VaR scenarios."""

    daily_closes: Mapping[str, Sequence[Decimal]]
    confidence: Decimal = Decimal("0.99")
    min_observations: int = 20


def _observations(inputs: VarInputs, symbols: Sequence[str]) -> int:
    lengths = [len(inputs.daily_closes.get(s, ())) for s in symbols]
    return max(0, min(lengths, default=0) - 1)


def var_loss_result(
    *,
    portfolio: Portfolio,
    key: str,
    title: str,
    inputs: VarInputs,
    thresholds: MonitorThresholds,
    day: date,
    vol_multiplier: Decimal | None = None,
    source: str = "",
) -> ScenarioResult:
    """A loss from the historical VaR of the current holdings (``historical_var``).

    With ``vol_multiplier`` (volatility spike): ``loss = VaR(portfolio) * multiplier``,
    the diversified VaR with every return scaled. Without (correlation to 1): ``loss =
    sum of each holding's standalone VaR``, as if every instrument fell together on its
    own worst day. ``n/a`` when a holding has no daily closes; a note when the window
    has fewer than ``min_observations`` returns.
    """
    values: dict[str, Decimal] = {}
    for h in portfolio.holdings:
        values[h.instrument] = values.get(h.instrument, _ZERO) + h.value
    symbols = [s for s, v in values.items() if v]
    missing = [s for s in symbols if len(inputs.daily_closes.get(s, ())) < 2]
    if missing:
        return ScenarioResult(
            key=key,
            title=title,
            status=NOT_APPLICABLE,
            equity_before=portfolio.equity,
            pnl=_ZERO,
            close_cost=_ZERO,
            loss=_ZERO,
            equity_after=portfolio.equity,
            loss_pct=_ZERO,
            drawdown_after=_ZERO,
            mode="",
            alerts=(),
            breaches=(),
            source=source,
            note=f"no daily closes for {', '.join(sorted(missing))}: VaR not computable",
        )
    diversified = historical_var(
        holdings=values, daily_closes=inputs.daily_closes, confidence=inputs.confidence
    )
    standalone = {
        s: historical_var(
            holdings={s: values[s]},
            daily_closes={s: inputs.daily_closes[s]},
            confidence=inputs.confidence,
        )
        for s in symbols
    }
    extra = {"var_diversified": str(diversified)}
    extra.update({f"var_standalone:{s}": str(v) for s, v in sorted(standalone.items())})
    if vol_multiplier is not None:
        loss = diversified * vol_multiplier
        extra["vol_multiplier"] = str(vol_multiplier)
    else:
        loss = sum(standalone.values(), _ZERO)
        extra["diversification_lost"] = str(loss - diversified)
    n = _observations(inputs, symbols)
    extra["observations"] = str(n)
    note = ""
    if n < inputs.min_observations:
        note = f"only {n} daily returns in the VaR window (< {inputs.min_observations}): rough"
    return _judge(
        portfolio=portfolio,
        key=key,
        title=title,
        pnl=-loss,
        close_cost=_ZERO,
        thresholds=thresholds,
        day=day,
        source=source,
        note=note,
        extra=extra,
    )


def worst_status(statuses: Sequence[str]) -> str:
    """The most severe of ``statuses`` (fail > warn > ok > n/a); ``ok`` when empty."""
    return max(statuses, key=lambda s: _RANK[s], default=OK)
