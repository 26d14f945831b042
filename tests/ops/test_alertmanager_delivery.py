"""A real Alertmanager delivers a warning to Telegram (a loopback fake of the Bot API)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.telegram import bot_api_server
from tests.ops.test_monitoring_config import RENDER, VALUES

TOKEN = VALUES["TELEGRAM_BOT_TOKEN"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def telegram_fake():
    with bot_api_server(TOKEN) as (url, state):
        yield url, state


def test_alertmanager_when_warning_posted_then_telegram_receives_it(
    tmp_path: Path, telegram_fake
) -> None:
    telegram_url, telegram = telegram_fake
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "alertmanager missing under CI: .ci/run must install prometheus-alertmanager"
            )
        pytest.skip("needs the Debian package prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    env = {**os.environ, **VALUES, "TELEGRAM_API_URL": telegram_url}
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

        telegram.wait_sent(1, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    assert len(telegram.sent) == 1
    message = telegram.sent[0]
    assert message["chat_id"] in (-1001234, "-1001234")
    assert message["text"] == "[WARNING] Drawdown > 10%: 12%"
