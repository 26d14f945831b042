"""The overview in a real browser: Debian's Chromium driven by Playwright, served by Daphne.

Needs the Debian package ``chromium`` (never ``playwright install``) and the PyPI
package ``playwright``. Outside CI the test is skipped when either is missing.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_UP, Decimal

import pytest
from channels.testing import ChannelsLiveServerTestCase
from daphne.testing import DaphneProcess
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone

from apps.core.realtime import GROUP_PANEL, broadcast_now
from apps.trading.models import EquitySnapshot
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
SCREENSHOT = os.environ.get("PANEL_SCREENSHOT", "/tmp/panel.png")
PASSWORD = "correct horse battery staple"  # noqa: S105 - test user only


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (required in CI)")
    pytest.skip(why)


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


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


@pytest.mark.browser
class OverviewBrowserTests(ChannelsLiveServerTestCase):
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
        # The server process is forked: it must not inherit (and share) our open DB sockets.
        connections.close_all()
        super().setUpClass()

    def setUp(self) -> None:
        super().setUp()
        get_user_model().objects.create_user("operator", password=PASSWORD, is_staff=True)
        self.account = trading_history_create(points=150)
        self.latest = EquitySnapshot.objects.filter(account=self.account).order_by("-ts").first()

    def test_overview_when_events_arrive_then_updates_live_without_reload(self) -> None:
        from playwright.sync_api import expect, sync_playwright

        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 1100})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on(
                    "console",
                    lambda msg: (
                        errors.append(msg.text)
                        if msg.type == "error"
                        and not msg.text.startswith("Failed to load resource")
                        else None
                    ),
                )
                # The admin login page asks for /favicon.ico (404); any other failed request counts.
                page.on(
                    "response",
                    lambda r: (
                        errors.append(f"{r.status} {r.url}")
                        if r.status >= 400 and not r.url.endswith("/favicon.ico")
                        else None
                    ),
                )
                page.set_default_timeout(10_000)

                # Arrange: log in through the admin login form, land on the overview.
                page.goto(f"{self.live_server_url}/")
                page.fill("#id_username", "operator")
                page.fill("#id_password", PASSWORD)
                page.click("input[type=submit]")
                page.wait_for_url(f"{self.live_server_url}/")

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
                page.wait_for_timeout(1600)  # let the change highlight fade for a clean picture
                page.screenshot(path=SCREENSHOT, full_page=True)

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
