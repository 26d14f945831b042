"""The overview in a real browser: Debian's Chromium driven by Playwright, served by Daphne.

Needs the Debian package ``chromium`` (never ``playwright install``) and the PyPI
package ``playwright``. Outside CI the test is skipped when either is missing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from channels.testing import ChannelsLiveServerTestCase
from daphne.testing import DaphneProcess
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import Account
from apps.core.realtime import GROUP_PANEL, broadcast_now
from apps.engine.runner import Engine
from apps.marketdata.domain.csvfile import read_bars
from apps.risk.domain.modes import SystemMode
from apps.risk.models import Incident
from apps.risk.services.modes import system_mode_get
from apps.strategies.domain.registry import build_strategy
from apps.trading.models import EquitySnapshot, Order, Position
from apps.trading.services.accounts import account_get_or_create
from tests.panel.factories import trading_history_create

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS") or ROOT / "var" / "test-artifacts")
PASSWORD = "correct horse battery staple"  # noqa: S105 - test user only
OPEN_STATUSES = ("initialized", "submitted", "accepted", "partially_filled", "pending_cancel")


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (required in CI)")
    pytest.skip(why)


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def _login(page, base_url: str, device: TOTPDevice) -> None:
    """The real two-step login: password, then the TOTP code of the device's key now."""
    page.goto(f"{base_url}/")
    page.wait_for_url("**/account/login/**")
    page.fill("#id_auth-username", "operator")
    page.fill("#id_auth-password", PASSWORD)
    page.click("button.btn-primary")
    page.wait_for_selector("#id_token-otp_token")
    page.fill(
        "#id_token-otp_token", f"{totp(device.bin_key, digits=device.digits):0{device.digits}d}"
    )
    page.click("button.btn-primary")
    page.wait_for_url(f"{base_url}/")


def _watch_errors(page, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )


def _db(fn):
    """Run fn (ORM reads) in a worker thread: Playwright's sync API keeps an event loop
    running in the test thread, where Django refuses database calls."""

    def call():
        try:
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result(timeout=30)


def _mode() -> SystemMode:
    return _db(system_mode_get)


def _open_positions(account_id: int | None = None) -> int:
    qs = Position.objects.exclude(quantity=0)
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    return _db(qs.count)


def _broadcast(event: str, payload: dict) -> None:
    # Playwright's sync API keeps an event loop running in this thread, where
    # async_to_sync (inside broadcast_now) refuses to run: send from a worker thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(broadcast_now, GROUP_PANEL, event, payload).result(timeout=10)


class _TestDatabaseDaphneProcess(DaphneProcess):
    """Daphne in a forked child that keeps the parent's (already test_-prefixed) database.

    channels 4.3's ``set_database_connection`` setup prefixes ``test_`` to the NAME a
    second time under pytest-django (the NAME already is the test database after
    creation), so the server would look for ``test_test_<name>``. Fork inherits the
    right settings: drop that setup.
    """

    def __init__(self, host, get_application, kwargs=None, setup=None, teardown=None, port=None):
        super().__init__(
            host, get_application, kwargs=kwargs, setup=None, teardown=teardown, port=port
        )


def before_fork() -> None:
    """What a forked live server (Daphne) must not inherit from this process."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync
    from channels.layers import channel_layers

    # Our open DB sockets, and our channel layer's Redis (pub/sub) connections.
    connections.close_all()
    channel_layers.backends.clear()
    # A fresh event loop for Daphne's asyncio reactor (async tests may leave a closed one).
    asyncio.set_event_loop(asyncio.new_event_loop())
    # asgiref's one sync thread (database_sync_to_async runs there): if an earlier test
    # started it, the child would inherit the executor without its thread and every
    # consumer's database call would wait forever (the websocket never opens).
    if getattr(SyncToAsync.single_thread_executor, "_threads", None):
        SyncToAsync.single_thread_executor.shutdown(wait=True)
        SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


class _BrowserTestCase(ChannelsLiveServerTestCase):
    serve_static = True
    ProtocolServerProcess = _TestDatabaseDaphneProcess

    @classmethod
    def setUpClass(cls) -> None:
        _require(
            os.path.exists(CHROMIUM) and shutil.which(CHROMIUM) is not None,
            "needs Debian package chromium",
        )
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            _require(False, "needs the PyPI package playwright")
        before_fork()
        super().setUpClass()

    def setUp(self) -> None:
        super().setUp()
        self.user = get_user_model().objects.create_user(
            "operator", password=PASSWORD, is_staff=True
        )
        self.device = TOTPDevice.objects.create(user=self.user, name="default", confirmed=True)


@pytest.mark.browser
class OverviewBrowserTests(_BrowserTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.account = trading_history_create(points=150)
        self.latest = EquitySnapshot.objects.filter(account=self.account).order_by("-ts").first()

    def test_overview_when_events_arrive_then_updates_live_without_reload(self) -> None:
        from playwright.sync_api import expect, sync_playwright

        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 1100})
                _watch_errors(page, errors)
                page.set_default_timeout(10_000)

                # Arrange: log in with password and code, land on the overview.
                _login(page, self.live_server_url, self.device)

                expect(page.locator("#kpi-equity")).to_have_text(_money(self.latest.equity))
                expect(page.locator("#mode-banner")).to_have_class("mode-banner mode-normal")
                expect(page.locator("#equity-points")).to_have_text("150 points")
                expect(page.locator("#positions-body tr")).to_have_count(2)
                expect(page.locator("#conn")).to_have_attribute("data-state", "live")
                page.evaluate("window.__notReloaded = true")

                # Act: the engine marks the account and records a decision.
                _broadcast(
                    "equity.updated",
                    {
                        "account": self.account.name,
                        "ts": "2024-03-01T12:35:00Z",
                        "equity": "10187.654321",
                        "cash": "9871.42",
                        "realized_pnl": "0",
                        "unrealized_pnl": "316.234321",
                        "fees": "7.1308",
                        "pnl": "187.654321",
                        "pnl_pct": "0.0187654321",
                        "drawdown": "0.0025",
                    },
                )
                _broadcast(
                    "decision.created",
                    {
                        "id": 987654,
                        "created_at": timezone.now().isoformat(),
                        "bar_ts": "2024-03-01T12:35:00Z",
                        "instrument": "SOL-USD",
                        "strategy": "sma_cross",
                        "signal": "enter_long",
                        "price": "142.375",
                        "mode": "normal",
                        "check_result": "failed",
                        "failed_checks": ["max_position"],
                        "action": "denied",
                        "order_ids": [],
                    },
                )

                # Assert: the DOM follows, on the same page load.
                expect(page.locator("#kpi-equity")).to_have_text("10,187.65")
                expect(page.locator("#kpi-pnl")).to_have_text("+187.65")
                expect(page.locator("#kpi-pnl-pct")).to_have_text("+1.88%")
                expect(page.locator("#kpi-drawdown")).to_have_text("0.25%")
                expect(page.locator("#equity-points")).to_have_text("151 points")
                first = page.locator("#decisions-body tr").first
                expect(first).to_contain_text("SOL-USD")
                expect(first).to_contain_text("failed: max_position")
                expect(first).to_contain_text("142.375")
                assert page.evaluate("window.__notReloaded") is True

                _broadcast(
                    "mode.changed",
                    {
                        "mode": "pause",
                        "previous": "normal",
                        "actor": "user:operator",
                        "reason": "volatility",
                        "source": "panel",
                    },
                )
                expect(page.locator("#mode-banner")).to_have_class("mode-banner mode-pause")
                expect(page.locator("#mode-name")).to_have_text("PAUSE")
                assert page.evaluate("window.__notReloaded") is True
            finally:
                browser.close()
        assert errors == []

    def test_every_page_when_loaded_then_no_content_security_policy_violation(self) -> None:
        """The panel passes its own CSP (no 'unsafe-inline'): every page, logged in and out."""
        from playwright.sync_api import sync_playwright

        pages = [
            "/",
            "/risk/",
            "/plans/",
            "/incidents/",
            "/security/",
            "/agents/",
            "/ml/",
            "/reconciliation/",
            "/ops/readiness/",
            "/ops/checklists/",
            "/ops/stress/",
            "/admin/",
            "/account/two_factor/",
        ]
        errors: list[str] = []
        violations: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 1100})
                page.add_init_script(
                    "window.__csp = [];"
                    "document.addEventListener('securitypolicyviolation', e => window.__csp.push("
                    "e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + e.sourceFile"
                    " + ':' + e.lineNumber));"
                )
                _watch_errors(page, errors)
                page.set_default_timeout(10_000)
                first = page.goto(f"{self.live_server_url}/account/login/")
                policy = first.headers["content-security-policy"]
                violations += page.evaluate("window.__csp")
                _login(page, self.live_server_url, self.device)
                violations += page.evaluate("window.__csp")
                for path in pages:
                    response = page.goto(f"{self.live_server_url}{path}")
                    assert response.status == 200, (path, response.status)
                    page.wait_for_load_state("networkidle")
                    violations += [f"{path}: {v}" for v in page.evaluate("window.__csp")]
            finally:
                browser.close()

        assert "unsafe-inline" not in policy
        assert "script-src 'self'" in policy
        assert "style-src 'self'" in policy
        assert violations == []
        assert errors == []


class _EngineThread(threading.Thread):
    """The real engine (sma_cross, paper broker, Celery eager) replaying recorded bars
    into the live server's database at a small speed, so P&L moves while we watch."""

    def __init__(self, account: Account, bars: list, delay: float) -> None:
        super().__init__(name="replay-engine", daemon=True)
        params = {"fast": "3", "slow": "8"}  # short windows: positions within a few bars
        self.engine = Engine.for_account(
            account=account,
            strategy_factory=lambda: build_strategy("sma_cross", params),
            strategy_name="sma_cross",
            strategy_params=params,
            stake=Decimal("20000"),
        )
        self.bars = bars
        self.delay = delay
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for bar in self.bars:
                if self.engine.stopping:
                    break
                self.engine.on_bar(bar)
                self.done += 1
                time.sleep(self.delay)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections.close_all()


@pytest.mark.browser
class KillSwitchEndToEndTests(_BrowserTestCase):
    """Log in with password + TOTP, watch P&L move with replayed bars, press the kill
    switch, see KILL with nothing open and every position flat, and resume refused until
    the incident report is written and closed."""

    def test_kill_switch_end_to_end(self) -> None:
        from playwright.sync_api import expect, sync_playwright

        from tradebot.celery import app as celery_app

        account = account_get_or_create(
            name=settings.ENGINE_ACCOUNT, starting_cash=Decimal("100000")
        )
        sample = ROOT / "data" / "sample" / "BTC-USD_1m_coinbase.csv"
        bars = list(itertools.islice(read_bars(sample), 400))
        errors: list[str] = []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        celery_app.conf.task_always_eager = True
        engine = _EngineThread(account, bars, delay=0.03)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                try:
                    page = browser.new_page(viewport={"width": 1440, "height": 1200})
                    _watch_errors(page, errors)
                    page.set_default_timeout(15_000)
                    _login(page, self.live_server_url, self.device)
                    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
                    page.evaluate("window.__notReloaded = true")

                    # P&L moves as the engine's bars arrive (no reload).
                    engine.start()
                    pnl = page.locator("#kpi-pnl")
                    expect(pnl).not_to_have_text("—", timeout=20_000)
                    first = pnl.inner_text()
                    expect(pnl).not_to_have_text(first, timeout=30_000)
                    second = pnl.inner_text()
                    expect(pnl).not_to_have_text(second, timeout=30_000)
                    expect(page.locator("#kpi-daily-pnl")).not_to_have_text("—", timeout=20_000)
                    assert page.evaluate("window.__notReloaded") is True
                    # Hold a position when the switch is pressed, then stop feeding bars.
                    deadline = time.monotonic() + 30
                    while not _open_positions(account.id) and time.monotonic() < deadline:
                        time.sleep(0.2)
                    page.wait_for_timeout(800)
                    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
                    engine.engine.stop()
                    engine.join(timeout=30)
                    assert engine.error is None, engine.error
                    assert engine.done > 10

                    # Kill switch: reason, confirmation step, engage.
                    page.fill("#kill-reason", "end-to-end test: runaway strategy")
                    page.click("#kill-button")
                    expect(page.locator("#kill-confirm-reason")).to_have_text(
                        "end-to-end test: runaway strategy"
                    )
                    assert _mode() is not SystemMode.KILL  # nothing before confirming
                    page.click("#kill-confirm")
                    page.wait_for_url(f"{self.live_server_url}/")
                    expect(page.locator("#mode-name")).to_have_text("KILL")
                    expect(page.locator(".msg-warning")).to_contain_text("KILL engaged")
                    expect(page.locator("#working-count")).to_have_text("0 working")
                    expect(page.locator("#positions-count")).to_have_text("0 open")
                    assert _mode() is SystemMode.KILL
                    assert _db(Order.objects.filter(status__in=OPEN_STATUSES).count) == 0
                    assert _open_positions() == 0

                    # Resume refused while the incident is open.
                    page.fill("#mode-reason", "looks fine now")
                    page.click("button[name=mode][value=observation]")
                    expect(page.locator(".msg-error")).to_contain_text("refused")
                    expect(page.locator("#mode-name")).to_have_text("KILL")
                    assert _mode() is SystemMode.KILL

                    # Write the report and close the incident.
                    incident = _db(lambda: Incident.objects.get(status="open"))
                    page.goto(f"{self.live_server_url}/incidents/")
                    page.click(f"tr[data-incident='{incident.id}'] a")
                    page.fill("#id_what_happened", "the strategy sent orders in a loop")
                    page.fill("#id_cause", "test: a deliberately bad configuration")
                    page.fill("#id_action_taken", "kill switch, positions closed, config fixed")
                    page.click("#incident-save")
                    expect(page.locator(".msg-success")).to_contain_text("saved")
                    page.click("#incident-close")
                    expect(page.locator("#incident-status")).to_have_text("closed")

                    # Now resume to OBSERVATION is allowed.
                    page.goto(f"{self.live_server_url}/")
                    page.fill("#mode-reason", "incident reviewed and closed")
                    page.click("button[name=mode][value=observation]")
                    expect(page.locator("#mode-name")).to_have_text("OBSERVATION")
                    assert _mode() is SystemMode.OBSERVATION
                finally:
                    browser.close()
        finally:
            engine.engine.stop()
            engine.join(timeout=30)
            celery_app.conf.task_always_eager = False
        assert errors == []
