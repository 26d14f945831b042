"""The quarterly stress test (spec 7.1): historical and hypothetical shocks on the live book.

Reads every account's open positions, risk limits and peak equity, measures the
historical shocks on the recorded bars in STRESS_DATA_DIR (data/stress/README.md), runs
the scenarios of apps/risk/domain/stress.py and stores a StressReport (admin, page
/ops/stress/), audited. Used by ``manage.py stress_test`` and the ``ops.stress_test``
beat task (first Saturday of each quarter).

| scenario | size measured on | close-out slippage |
|---|---|---|
| March 2020 crash | peak-to-trough closes: SPY daily 2020-01..04, BTC/USDT hourly 2020-03-10..13 | 50 bps |
| flash crash | worst bar open-to-low, same files | 200 bps |
| overnight gap down | worst SPY open vs previous close (every asset class) | 50 bps |
| broker outage (4 h) | worst 4-hour BTC move; worst SPY day for equities (a session lost) | 100 bps |
| volatility spike | VaR 99 % x (SPY volatility 2020-02-24..03-31 / 2020-01..02-21) | - |
| correlation to 1 | sum of the holdings' standalone VaR 99 % (no diversification) | - |
| liquidity shock | no price move: close everything at 300 bps | 300 bps |

The slippage figures are assumptions (spreads and depth in March 2020), stated in each
scenario's source; the fee is PAPER_FEE_RATE.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.accounts.models import Account
from apps.audit.services import audit_record
from apps.core.realtime import jsonable
from apps.marketdata.domain.csvfile import read_bars
from apps.marketdata.selectors import daily_closes
from apps.model.bars import Bar
from apps.ops.exceptions import OpsError
from apps.ops.models import StressReport
from apps.ops.services.maintenance import maintenance_run
from apps.risk.domain.metrics import align_daily_closes
from apps.risk.domain.stress import (
    FAIL,
    Holding,
    Portfolio,
    ScenarioResult,
    ShockScenario,
    VarInputs,
    max_drawdown,
    shock_result,
    var_loss_result,
    volatility_ratio,
    worst_bar_drop,
    worst_gap,
    worst_status,
    worst_window_move,
)
from apps.risk.services.limits import risk_limits_for
from apps.risk.services.monitoring import monitor_thresholds
from apps.trading.models import Position

logger = logging.getLogger(__name__)

TASK = "stress_test"
SPY_FILE = "SPY_1d_2020-01_2020-04.csv"
BTC_FILE = "BTC-USDT_1h_binance-2020-03-crash.csv"
OUTAGE_HOURS = 4
CALM_END = "2020-02-21"  # last close before the sell-off (SPY, the calm period's end)
SCENARIO_KEYS = (
    "crash_2020_03",
    "flash_crash",
    "gap_down",
    "broker_outage",
    "volatility_spike",
    "correlation_one",
    "liquidity_shock",
)
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _pct(x: Decimal) -> str:
    return f"{x * 100:.2f} %"


def _load(data_dir: Path, name: str) -> tuple[list[Bar], dict[str, str]]:
    path = data_dir / name
    if not path.is_file():
        raise OpsError(
            f"stress data file missing: {path} (set STRESS_DATA_DIR to the folder holding "
            f"{SPY_FILE} and {BTC_FILE}, shipped in data/stress/)"
        )
    rejected: list[Any] = []
    bars = list(read_bars(path, on_reject=rejected.append))
    if rejected or len(bars) < 10:
        raise OpsError(f"stress data file {path} has bad rows ({len(rejected)}) or too few bars")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return bars, {"file": name, "sha256": digest, "bars": str(len(bars))}


def stress_scenarios(
    *, data_dir: Path | None = None
) -> tuple[list[ShockScenario], Decimal, dict[str, Any]]:
    """The price-shock scenarios, the volatility multiplier, and what they were measured on."""
    data_dir = Path(data_dir or settings.STRESS_DATA_DIR)
    spy, spy_info = _load(data_dir, SPY_FILE)
    btc, btc_info = _load(data_dir, BTC_FILE)
    s_open = [b.open for b in spy]
    s_low = [b.low for b in spy]
    s_close = [b.close for b in spy]
    b_open = [b.open for b in btc]
    b_low = [b.low for b in btc]
    b_close = [b.close for b in btc]

    def moves(equity: Decimal, crypto: Decimal) -> dict[str, Decimal]:
        return {"equity": equity, "crypto": crypto, "*": min(equity, crypto)}

    crash = moves(max_drawdown(s_close), max_drawdown(b_close))
    flash = moves(worst_bar_drop(s_open, s_low), worst_bar_drop(b_open, b_low))
    gap = worst_gap(s_open, s_close)
    outage = moves(worst_window_move(s_close, 1), worst_window_move(b_close, OUTAGE_HOURS))
    calm = [b.close for b in spy if b.ts.date().isoformat() <= CALM_END]
    stressed = [b.close for b in spy if CALM_END <= b.ts.date().isoformat() <= "2020-03-31"]
    vol = volatility_ratio(calm, stressed)
    scenarios = [
        ShockScenario(
            "crash_2020_03",
            "March 2020 crash",
            crash,
            Decimal(50),
            f"peak-to-trough closes: SPY daily Jan-Apr 2020 {_pct(crash['equity'])}, "
            f"BTC/USDT hourly 2020-03-10..13 {_pct(crash['crypto'])}; close-out at 50 bps",
        ),
        ShockScenario(
            "flash_crash",
            "Flash crash",
            flash,
            Decimal(200),
            f"worst open-to-low of one bar: SPY daily {_pct(flash['equity'])}, BTC/USDT hourly "
            f"{_pct(flash['crypto'])}; liquidity gone: close-out at 200 bps",
        ),
        ShockScenario(
            "gap_down",
            "Overnight gap down",
            {"*": gap},
            Decimal(50),
            f"worst SPY open against the previous close (2020-03-16) {_pct(gap)}, applied to "
            "every asset class; close-out at 50 bps",
        ),
        ShockScenario(
            "broker_outage",
            f"Broker outage ({OUTAGE_HOURS} h)",
            outage,
            Decimal(100),
            f"positions cannot be closed: worst {OUTAGE_HOURS}-hour BTC/USDT move "
            f"{_pct(outage['crypto'])}, worst SPY day (a session lost) {_pct(outage['equity'])}; "
            "close-out at 100 bps when the broker is back",
        ),
        ShockScenario(
            "liquidity_shock",
            "Liquidity shock",
            {"*": Decimal(0)},
            Decimal(300),
            "no price move; every position closed at once at 300 bps (spreads x10, depth gone)",
        ),
    ]
    inputs = {
        "files": [spy_info, btc_info],
        "moves": {s.key: {k: str(v) for k, v in s.moves.items()} for s in scenarios},
        "slippage_bps": {s.key: str(s.slippage_bps) for s in scenarios},
        "vol_multiplier": str(vol),
        "fee_rate": str(settings.PAPER_FEE_RATE),
        "var_window_days": settings.RISK_VAR_WINDOW_DAYS,
    }
    return scenarios, vol, inputs


def stress_portfolios() -> list[tuple[Portfolio, dict[str, int]]]:
    """Every account's book (positions at their last mark), limits and peak equity.

    Returns (portfolio, {symbol: instrument id}) per account, by account name.
    """
    out = []
    for account in Account.objects.order_by("name"):
        positions = list(
            Position.objects.filter(account=account)
            .exclude(quantity=0)
            .select_related("instrument")
            .order_by("instrument__symbol")
        )
        holdings = tuple(
            Holding(
                instrument=p.instrument.symbol,
                asset_class=p.instrument.asset_class,
                quantity=p.quantity,
                price=p.last_price or p.avg_price,
            )
            for p in positions
        )
        portfolio = Portfolio(
            account=account.name,
            cash=account.cash,
            holdings=holdings,
            peak_equity=account.peak_equity,
            limits=risk_limits_for(account_id=account.pk),
        )
        out.append((portfolio, {p.instrument.symbol: p.instrument_id for p in positions}))
    return out


def _var_inputs(ids: dict[str, int]) -> VarInputs:
    by_id = daily_closes(instrument_ids=list(ids.values()), days=settings.RISK_VAR_WINDOW_DAYS)
    _, aligned = align_daily_closes({s: by_id.get(i, {}) for s, i in ids.items()})
    return VarInputs(daily_closes=aligned)


def _result_json(result: ScenarioResult) -> dict[str, Any]:
    return jsonable(asdict(result))


def _account_line(portfolio: Portfolio, results: list[ScenarioResult]) -> str:
    if not portfolio.holdings:
        return f"{portfolio.account}: no open positions, nothing at risk"
    judged = [r for r in results if r.status != "n/a"]
    worst = max(judged, key=lambda r: r.loss) if judged else None
    status = worst_status([r.status for r in results])
    line = f"{portfolio.account}: {status.upper()}, equity {portfolio.equity:.2f}"
    if worst is not None:
        line += (
            f"; worst {worst.title}: loss {worst.loss:.2f} ({_pct(worst.loss_pct)}), "
            f"drawdown {_pct(worst.drawdown_after)}"
        )
        if worst.mode:
            line += f" -> {worst.mode.upper()}"
    failing = [r.title for r in results if r.status == FAIL]
    if failing:
        line += f"; beyond the kill level in: {', '.join(failing)}"
    return line


def stress_test_run(
    *, actor: str, now: datetime | None = None, progress: Progress = _quiet
) -> StressReport:
    """Run every scenario against every account; store, audit and return the report.

    Recorded as a MaintenanceRun (task "stress_test", its last success is the metric
    ``maintenance_last_success_timestamp{task="stress_test"}``). A scenario beyond the
    kill level is a finding (outcome "fail"), not an error: the run itself succeeds.
    """
    now = now or timezone.now()

    with maintenance_run(task=TASK, actor=actor) as run:
        progress("measuring the historical shocks")
        scenarios, vol, inputs = stress_scenarios()
        thresholds = monitor_thresholds()
        fee = settings.PAPER_FEE_RATE
        day = now.date()
        results: list[dict[str, Any]] = []
        lines: list[str] = []
        statuses: list[str] = []
        for portfolio, ids in stress_portfolios():
            var_inputs = _var_inputs(ids) if ids else VarInputs(daily_closes={})
            account_results: list[ScenarioResult] = []
            for scenario in scenarios[:4]:
                progress(f"{portfolio.account}: {scenario.title}")
                account_results.append(
                    shock_result(
                        portfolio=portfolio,
                        scenario=scenario,
                        fee_rate=fee,
                        thresholds=thresholds,
                        day=day,
                    )
                )
            progress(f"{portfolio.account}: volatility spike")
            account_results.append(
                var_loss_result(
                    portfolio=portfolio,
                    key="volatility_spike",
                    title="Volatility spike",
                    inputs=var_inputs,
                    thresholds=thresholds,
                    day=day,
                    vol_multiplier=vol,
                    source=f"1-day historical VaR 99 % x {vol:.2f} (SPY volatility "
                    "2020-02-21..03-31 over 2020-01-02..02-21)",
                )
            )
            progress(f"{portfolio.account}: correlation to 1")
            account_results.append(
                var_loss_result(
                    portfolio=portfolio,
                    key="correlation_one",
                    title="Correlation to 1",
                    inputs=var_inputs,
                    thresholds=thresholds,
                    day=day,
                    source="sum of each holding's standalone 1-day VaR 99 % (no diversification)",
                )
            )
            progress(f"{portfolio.account}: {scenarios[4].title}")
            account_results.append(
                shock_result(
                    portfolio=portfolio,
                    scenario=scenarios[4],
                    fee_rate=fee,
                    thresholds=thresholds,
                    day=day,
                )
            )
            if portfolio.holdings:
                statuses.extend(r.status for r in account_results)
            lines.append(_account_line(portfolio, account_results))
            results.append(
                jsonable(
                    {
                        "account": portfolio.account,
                        "equity": portfolio.equity,
                        "gross_exposure": portfolio.gross_exposure,
                        "peak_equity": portfolio.peak_equity,
                        "holdings": [asdict(h) for h in portfolio.holdings],
                        "status": worst_status([r.status for r in account_results])
                        if portfolio.holdings
                        else "ok",
                        "scenarios": [_result_json(r) for r in account_results],
                    }
                )
            )
        outcome = worst_status(statuses)
        if not results:
            lines.append("no account: nothing to stress")
        summary = f"stress test {outcome.upper()}\n" + "\n".join(lines)
        report = StressReport.objects.create(
            created_at=now,
            actor=actor,
            outcome=outcome,
            summary=summary,
            results=results,
            inputs=inputs,
            run=run,
        )
        run.detail = {"report": report.pk, "outcome": outcome, "accounts": len(results)}
        audit_record(
            actor=actor,
            action="stress_test.run",
            target=f"stress_report:{report.pk}",
            data={"outcome": outcome, "summary": lines},
        )
    return report


def stress_steps(accounts: int) -> int:
    """How many progress steps a run takes (for a progress bar)."""
    return 1 + accounts * len(SCENARIO_KEYS)
