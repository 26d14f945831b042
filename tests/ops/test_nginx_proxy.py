"""The real nginx, with the shipped config, in front of the running app on loopback:
a websocket and an authenticated POST pass through it (TLS, upgrade, headers)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import websockets
from channels.testing import ChannelsLiveServerTestCase  # noqa: I001 - after the app imports
from django.contrib.auth import get_user_model
from django.test import Client

from apps.risk.domain.modes import SystemMode
from apps.risk.services.modes import system_mode_get
from tests.conftest import otp_login
from tests.ops.test_deployment_files import need, render_nginx
from tests.panel.test_browser import _broadcast as broadcast
from tests.panel.test_browser import _TestDatabaseDaphneProcess, before_fork


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxProxyTests(ChannelsLiveServerTestCase):
    ProtocolServerProcess = _TestDatabaseDaphneProcess

    @classmethod
    def setUpClass(cls) -> None:
        cls.nginx_bin = need("nginx", "nginx")
        before_fork()  # the server is forked: see tests/panel/test_browser.py
        super().setUpClass()

    def setUp(self) -> None:
        super().setUp()
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix="nginx-test-"))
        upstream = self.live_server_url.removeprefix("http://")
        self.https_port = free_port()
        conf = render_nginx(self.tmp, upstream, free_port(), self.https_port)
        self.nginx = subprocess.Popen(
            [
                self.nginx_bin,
                "-c",
                str(conf),
                "-e",
                str(self.tmp / "error.log"),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.fail("nginx did not start: " + (self.tmp / "error.log").read_text())
                time.sleep(0.1)
        self.base = f"https://127.0.0.1:{self.https_port}"
        user = get_user_model().objects.create_user("operator", password="pw-nginx", is_staff=True)
        client = Client()
        otp_login(client, user)
        self.session = client.cookies["sessionid"].value

    def tearDown(self) -> None:
        self.nginx.terminate()
        self.nginx.wait(timeout=10)
        super().tearDown()

    def test_websocket_when_proxied_by_nginx_then_events_reach_the_browser_side(self) -> None:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

        async def receive_one() -> dict:
            async with websockets.connect(
                f"wss://127.0.0.1:{self.https_port}/ws/panel/",
                ssl=tls,
                origin=f"https://127.0.0.1:{self.https_port}",
                additional_headers={"Cookie": f"sessionid={self.session}"},
            ) as ws:
                await asyncio.sleep(0.3)  # joined the group
                await asyncio.to_thread(
                    broadcast, "mode.changed", {"mode": "pause", "previous": "normal"}
                )
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                    if message["type"] == "mode.changed":
                        return message

        message = asyncio.run(receive_one())

        assert message["payload"]["mode"] == "pause"

    def test_post_when_proxied_by_nginx_then_reaches_the_app_with_csrf(self) -> None:
        with httpx.Client(
            base_url=self.base,
            verify=False,
            follow_redirects=False,  # noqa: S501
            cookies={"sessionid": self.session},
        ) as http:
            page = http.get("/")
            assert page.status_code == 200, page.text[:300]
            token = http.cookies.get("csrftoken")
            assert token
            refused = http.post("/api/mode", json={"mode": "pause", "reason": "via nginx"})
            response = http.post(
                "/api/mode",
                json={"mode": "pause", "reason": "via nginx"},
                headers={"X-CSRFToken": token, "Referer": f"{self.base}/"},
            )

        # nginx answered (its HSTS header; the test settings set none) and the app behind it
        assert response.headers["strict-transport-security"].startswith("max-age=31536000")
        assert refused.status_code == 403  # CSRF enforced behind the proxy too
        assert response.status_code == 200, response.text
        assert system_mode_get() is SystemMode.PAUSE


pytestmark = pytest.mark.integration
