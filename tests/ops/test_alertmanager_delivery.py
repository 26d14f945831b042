"""A real Alertmanager delivers a warning to Telegram (a loopback fake of the Bot API)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.ops.test_monitoring_config import RENDER, VALUES

TOKEN = VALUES["TELEGRAM_BOT_TOKEN"]


class FakeTelegram(BaseHTTPRequestHandler):
    """POST /bot<token>/sendMessage as the Bot API answers it; records what it got."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != f"/bot{TOKEN}/sendMessage":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"ok":false,"error_code":404,"description":"Not Found"}')
            return
        kind = self.headers.get("Content-Type", "")
        if "json" in kind:
            message = json.loads(body)
        else:
            from urllib.parse import parse_qs

            message = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        FakeTelegram.received.append(message)
        reply = {
            "ok": True,
            "result": {
                "message_id": len(FakeTelegram.received),
                "date": int(time.time()),
                "chat": {"id": int(message["chat_id"]), "type": "group"},
                "text": message.get("text", ""),
            },
        }
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        return


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def telegram_fake():
    FakeTelegram.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTelegram)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_alertmanager_when_warning_posted_then_telegram_receives_it(
    tmp_path: Path, telegram_fake: str
) -> None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "alertmanager missing under CI: .ci/run must install prometheus-alertmanager"
            )
        pytest.skip("needs the Debian package prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    env = {**os.environ, **VALUES, "TELEGRAM_API_URL": telegram_fake}
    subprocess.run(
        [sys.executable, str(RENDER), str(config)], env=env, check=True, capture_output=True
    )
    # The shipped 30 s group_wait, shortened for the test only.
    config.write_text(config.read_text().replace("group_wait: 30s", "group_wait: 1s"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1)  # noqa: S310 - loopback
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("alertmanager did not become ready")
                time.sleep(0.2)
        now = datetime.now(UTC)
        alert = [
            {
                "labels": {"alertname": "HighDrawdown", "severity": "warning"},
                "annotations": {"summary": "Drawdown > 10%: 12%"},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=5)).isoformat(),
            }
        ]
        request = urllib.request.Request(
            f"{base}/api/v2/alerts",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback

        deadline = time.monotonic() + 30
        while not FakeTelegram.received and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    assert len(FakeTelegram.received) == 1
    message = FakeTelegram.received[0]
    assert message["chat_id"] in (-1001234, "-1001234")
    assert message["text"] == "[WARNING] Drawdown > 10%: 12%"
