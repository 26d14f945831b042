"""The quarterly stress test on a known book: every figure recomputed here, independently
of apps/risk/domain/stress.py, from the CSV files and the bars the test stores."""

from __future__ import annotations

import csv
import statistics
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from apps.accounts.models import Account
from apps.audit.models import AuditEvent
from apps.marketdata.models import Bar
from apps.ops.metrics import MaintenanceCollector
from apps.ops.models import MaintenanceRun, StressReport
from apps.ops.stress import stress_test_run
from apps.risk.models import RiskLimit
from apps.trading.models import Position
from tests.conftest import otp_login
from tests.trading.factories import instrument, paper_account

pytestmark = pytest.mark.django_db

D = Decimal
DATA = Path(__file__).resolve().parents[2] / "data" / "stress"
FEE = D("0.001")
NOW = datetime(2027, 1, 2, 12, 0, tzinfo=UTC)


def rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open() as f:
        return list(csv.DictReader(f))


SPY = rows("SPY_1d_2020-01_2020-04.csv")
BTC = rows("BTC-USDT_1h_binance-2020-03-crash.csv")


def peak_to_trough(closes: list[Decimal]) -> Decimal:
    best = D(0)
    for i, top in enumerate(closes):
        best = min(best, min(closes[i:]) / top - 1)
    return best


# Historical moves, recomputed by brute force from the files.
M_CRASH_EQ = peak_to_trough([D(r["close"]) for r in SPY])
M_CRASH_CR = peak_to_trough([D(r["close"]) for r in BTC])
M_FLASH_EQ = min(D(r["low"]) / D(r["open"]) - 1 for r in SPY)
M_FLASH_CR = min(D(r["low"]) / D(r["open"]) - 1 for r in BTC)
M_GAP = min(D(SPY[i]["open"]) / D(SPY[i - 1]["close"]) - 1 for i in range(1, len(SPY)))
M_OUT_EQ = min(D(SPY[i]["close"]) / D(SPY[i - 1]["close"]) - 1 for i in range(1, len(SPY)))
M_OUT_CR = min(D(BTC[i + 4]["close"]) / D(BTC[i]["close"]) - 1 for i in range(len(BTC) - 4))


def test_recorded_moves_when_read_then_the_documented_2020_figures():
    # the figures data/stress/README.md and the scenario sources quote
    assert (f"{M_CRASH_EQ:.4f}", f"{M_CRASH_CR:.4f}") == ("-0.3410", "-0.4922")
    assert (f"{M_GAP:.4f}", f"{M_FLASH_CR:.4f}", f"{M_OUT_CR:.4f}") == (
        "-0.1060",
        "-0.2454",
        "-0.2903",
    )


# --- the known book ----------------------------------------------------------------------
# cash 5000; BTC-USD long 0.5 @ 8000 (4000), ETH-USD short 10 @ 200 (-2000),
# SPY long 10 @ 300 (3000): equity 10000, peak 10000, max position 3500.
VALUES = {"BTC-USD": D(4000), "ETH-USD": D(-2000), "SPY": D(3000)}
CLASS = {"BTC-USD": "crypto", "ETH-USD": "crypto", "SPY": "equity"}


def daily_series(base: int, step: int, days: int = 30) -> list[Decimal]:
    """A deterministic zig-zag of daily closes."""
    return [D(base) + D(step) * ((t * 7) % 5 - 2) + D(t) for t in range(days)]


CLOSES = {
    "BTC-USD": daily_series(8000, 150),
    "ETH-USD": daily_series(200, 6),
    "SPY": daily_series(300, 4),
}


@pytest.fixture
def book(settings):
    settings.PAPER_FEE_RATE = FEE
    account = paper_account(max_position="3500")
    Account.objects.filter(pk=account.pk).update(cash=D(5000), peak_equity=D(10000))
    RiskLimit.objects.filter(account=account).update(max_gross_exposure=D(8000))
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    for symbol, closes in CLOSES.items():
        inst = instrument(symbol)
        Bar.objects.bulk_create(
            Bar(
                instrument=inst,
                timeframe="1d",
                ts=start + timedelta(days=t),
                open=c,
                high=c,
                low=c,
                close=c,
                volume=D(1),
            )
            for t, c in enumerate(closes)
        )
    for symbol, quantity, price in (
        ("BTC-USD", "0.5", "8000"),
        ("ETH-USD", "-10", "200"),
        ("SPY", "10", "300"),
    ):
        Position.objects.create(
            account=account,
            instrument=instrument(symbol),
            quantity=D(quantity),
            avg_price=D(price),
            last_price=D(price),
        )
    return account


def scenario(report: StressReport, key: str) -> dict:
    (account,) = report.results
    return next(s for s in account["scenarios"] if s["key"] == key)


def same(got: str, want: Decimal) -> bool:
    """Equal to 20 decimal places: Decimal keeps 28 significant digits, and summing per
    holding (the code) or factoring the rate out (this test) rounds the last one apart."""
    return abs(D(got) - want) < D("1e-20")


def expected_shock(moves: dict[str, Decimal], bps: int) -> dict[str, Decimal]:
    pnl = sum(VALUES[s] * moves[CLASS[s]] for s in VALUES)
    cost = sum(abs(VALUES[s] * (1 + moves[CLASS[s]])) for s in VALUES) * (FEE + D(bps) / 10000)
    after = D(10000) + pnl - cost
    return {"pnl": pnl, "cost": cost, "after": after, "dd": (D(10000) - after) / D(10000)}


@pytest.mark.parametrize(
    ("key", "moves", "bps"),
    [
        ("crash_2020_03", {"equity": M_CRASH_EQ, "crypto": M_CRASH_CR}, 50),
        ("flash_crash", {"equity": M_FLASH_EQ, "crypto": M_FLASH_CR}, 200),
        ("gap_down", {"equity": M_GAP, "crypto": M_GAP}, 50),
        ("broker_outage", {"equity": M_OUT_EQ, "crypto": M_OUT_CR}, 100),
        ("liquidity_shock", {"equity": D(0), "crypto": D(0)}, 300),
    ],
)
def test_shock_scenarios_when_known_book_then_pnl_costs_and_drawdown_match(book, key, moves, bps):
    # Act
    report = stress_test_run(actor="test", now=NOW)
    # Assert
    got = scenario(report, key)
    want = expected_shock(moves, bps)
    assert same(got["pnl"], want["pnl"])
    assert same(got["close_cost"], want["cost"])
    assert same(got["equity_after"], want["after"])
    assert same(got["drawdown_after"], want["dd"])
    assert same(got["loss"], D(10000) - want["after"])
    expected_status = (
        "fail" if want["dd"] > D("0.15") else ("warn" if want["dd"] > D("0.10") else None)
    )
    if expected_status:
        assert got["status"] == expected_status
    expected_mode = (
        "kill" if want["dd"] > D("0.15") else ("pause" if want["dd"] > D("0.03") else "")
    )
    assert got["mode"] == expected_mode


def test_crash_when_known_book_then_beyond_kill_level_and_report_fails(book):
    report = stress_test_run(actor="test", now=NOW)

    crash = scenario(report, "crash_2020_03")
    # 2000 net crypto x -49.22 % + 3000 SPY x -34.10 % = about -2007 before costs: > 15 %
    assert crash["status"] == "fail"
    assert crash["mode"] == "kill"
    assert "drawdown_kill" in crash["alerts"]
    assert report.outcome == "fail"
    assert "beyond the kill level in: March 2020 crash" in report.summary


def test_liquidity_shock_when_position_over_its_limit_then_breach_named(book):
    report = stress_test_run(actor="test", now=NOW)

    liquidity = scenario(report, "liquidity_shock")
    # BTC 4000 > max_position_notional 3500; gross 9000 > max_gross_exposure 8000
    assert liquidity["breaches"] == [
        "BTC-USD worth 4000.00 > max_position_notional 3500.00",
        "gross exposure 9000.00 > max_gross_exposure 8000.00",
    ]
    assert liquidity["status"] == "warn"


def var99(pnls: list[Decimal]) -> Decimal:
    ordered = sorted(pnls)
    k = max(1, int((D(len(ordered)) * D("0.01")).to_integral_value(ROUND_CEILING)))
    return max(D(0), -ordered[k - 1])


def test_var_scenarios_when_known_bars_then_spike_and_correlation_one_losses(book):
    # Arrange: the returns of the stored daily closes, by hand
    returns = {s: [c[t] / c[t - 1] - 1 for t in range(1, len(c))] for s, c in CLOSES.items()}
    n = len(returns["SPY"])
    portfolio = [sum(VALUES[s] * returns[s][t] for s in VALUES) for t in range(n)]
    diversified = var99(portfolio)
    standalone = {s: var99([VALUES[s] * r for r in returns[s]]) for s in VALUES}
    spy = [D(r["close"]) for r in SPY]
    dates = [r["timestamp"][:10] for r in SPY]
    calm = [c for c, d in zip(spy, dates, strict=True) if d <= "2020-02-21"]
    stressed = [c for c, d in zip(spy, dates, strict=True) if "2020-02-21" <= d <= "2020-03-31"]

    def rets(closes):
        return [closes[i] / closes[i - 1] - 1 for i in range(1, len(closes))]

    ratio = statistics.stdev(rets(stressed)) / statistics.stdev(rets(calm))
    # Act
    report = stress_test_run(actor="test", now=NOW)
    # Assert
    spike = scenario(report, "volatility_spike")
    corr = scenario(report, "correlation_one")
    assert same(spike["extra"]["var_diversified"], diversified)
    assert abs(D(spike["extra"]["vol_multiplier"]) - ratio) < D("1e-20")
    assert abs(D(spike["loss"]) - diversified * ratio) < D("1e-15")
    assert same(corr["loss"], sum(standalone.values()))
    assert same(corr["extra"]["diversification_lost"], sum(standalone.values()) - diversified)
    assert corr["extra"]["observations"] == str(n)
    assert 3 < ratio < 8  # March 2020: SPY's daily volatility several times January's


def test_stress_test_when_no_positions_then_ok_and_says_nothing_at_risk(settings):
    settings.PAPER_FEE_RATE = FEE
    paper_account()

    report = stress_test_run(actor="test", now=NOW)

    assert report.outcome == "ok"
    assert "paper: no open positions, nothing at risk" in report.summary


def test_command_when_run_then_report_audited_as_cli_recorded_and_exit_1_on_fail(book, capsys):
    # Act
    with pytest.raises(SystemExit) as exited:
        call_command("stress_test", "--details", verbosity=1)
    # Assert
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "stress test FAIL" in out
    assert "March 2020 crash" in out
    report = StressReport.objects.get()
    event = AuditEvent.objects.get(action="stress_test.run")
    assert event.actor.startswith("cli:")
    assert event.target == f"stress_report:{report.pk}"
    run = MaintenanceRun.objects.get(task="stress_test")
    assert (run.outcome, run.detail["report"], run.actor) == ("ok", report.pk, event.actor)
    registry = CollectorRegistry()
    registry.register(MaintenanceCollector())
    assert (
        'maintenance_last_success_timestamp{task="stress_test"}'
        in generate_latest(registry).decode()
    )


def test_command_when_data_file_missing_then_clear_error_and_failed_run(book, settings, tmp_path):
    settings.STRESS_DATA_DIR = tmp_path

    with pytest.raises(CommandError, match=r"stress data file missing: .*STRESS_DATA_DIR"):
        call_command("stress_test", verbosity=0)
    assert MaintenanceRun.objects.get(task="stress_test").outcome == "failed"
    assert not StressReport.objects.exists()


def test_task_when_run_eagerly_then_report_by_beat(book):
    from apps.ops.tasks import stress_test

    result = stress_test.apply().get()

    report = StressReport.objects.get(pk=result["report"])
    assert (report.actor, report.outcome) == ("beat", "fail")


def test_page_when_verified_staff_then_report_shown_and_linked(book, client, staff_user):
    report = stress_test_run(actor="test", now=NOW)
    otp_login(client, staff_user)

    page = client.get("/ops/stress/").content.decode()
    readiness = client.get("/ops/readiness/").content.decode()

    assert f"Stress test #{report.pk}" in page
    assert 'data-scenario="crash_2020_03"' in page
    assert 'data-outcome="fail"' in page
    assert 'href="/ops/stress/"' in readiness


@pytest.mark.parametrize("verified", [False, True])
def test_page_when_not_verified_staff_then_refused(client, django_user_model, verified):
    user = django_user_model.objects.create_user(username="u", password="pw-x-1", is_staff=False)
    otp_login(client, user, verified=verified)

    response = client.get("/ops/stress/")

    assert response.status_code in (302, 403)


def test_settings_default_data_dir_is_the_shipped_folder():
    assert Path(django_settings.STRESS_DATA_DIR) == DATA
