"""End to end: a real Alertmanager posts a critical alert to the app's SMS webhook on a
live server; the app stores it and a real Celery worker forwards it to a loopback SMS
provider. Its Watchdog reaches the watchdog webhook the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from apps.core.queues import CeleryQueue
from apps.notifications.models import Delivery, WatchdogHeartbeat
from tests.fakes.sms import SMS_TOKEN, sms_server
from tests.fakes.telegram import bot_api_server
from tests.integration.conftest import CeleryWorker, database_url, purge_execution_queue, redis_url
from tests.notifications.conftest import rate_counters_clear
from tests.ops.test_alertmanager_delivery import free_port
from tests.ops.test_monitoring_config import RENDER, VALUES

pytestmark = pytest.mark.integration

HOOK_TOKEN = VALUES["ALERTMANAGER_WEBHOOK_TOKEN"]


def alertmanager_binary() -> str:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "alertmanager missing under CI: .ci/run must install prometheus-alertmanager"
            )
        pytest.skip("needs the Debian package prometheus-alertmanager")
    return binary


def wait_until(predicate, *, timeout: float, what: str, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{log()}")
        time.sleep(0.2)


def post_alerts(base: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(
        f"{base}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback


@pytest.fixture
def stack(live_server, settings):
    """The live app with webhook auth, a loopback SMS provider, a worker on "default"."""
    settings.ALERTMANAGER_WEBHOOK_TOKEN = HOOK_TOKEN
    rate_counters_clear()
    with sms_server() as (sms_url, sms), tempfile.TemporaryDirectory(prefix="tb-worker-") as tmp:
        settings.NOTIFY_SMS_URL = sms_url
        settings.NOTIFY_SMS_TOKEN = SMS_TOKEN
        settings.NOTIFY_SMS_RECIPIENTS = ["+34600000001"]
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url(settings.DATABASES["default"]),
            "REDIS_URL": redis_url(),
            "PYTHONUNBUFFERED": "1",
            "NOTIFY_SMS_URL": sms_url,
            "NOTIFY_SMS_TOKEN": SMS_TOKEN,
            "NOTIFY_SMS_RECIPIENTS": "+34600000001",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        queue = CeleryQueue.DEFAULT.value
        purge_execution_queue(queue)
        worker = CeleryWorker(env, Path(tmp), queues=queue)
        worker.start()
        try:
            yield live_server, sms, worker
        finally:
            worker.stop()
            purge_execution_queue(queue)
            rate_counters_clear()


def sent_delivery(worker):
    return wait_until(
        lambda: Delivery.objects.filter(channel="sms", status="sent").first(),
        timeout=20,
        what="the SMS delivery marked sent",
        log=worker.log_tail,
    )


def test_sms_webhook_when_posted_on_live_server_then_worker_forwards_the_sms(stack) -> None:
    live, sms, worker = stack
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "telegram-email-sms",
        "groupKey": '{}:{alertname="CriticalDrawdown"}',
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CriticalDrawdown", "severity": "critical"},
                "annotations": {"summary": "CRITICAL: Drawdown > 15%"},
                "startsAt": datetime.now(UTC).isoformat(),
                "fingerprint": "0123456789abcdef",
            }
        ],
    }
    request = urllib.request.Request(
        f"{live.url}/hooks/alertmanager/sms",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {HOOK_TOKEN}"},
        method="POST",
    )

    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        answer = json.loads(response.read())

    assert answer["forwarded"] == 1
    (message,) = sms.wait_sent(1, timeout=30)
    assert message["text"] == "[CRITICAL] CRITICAL: Drawdown > 15%"
    assert sent_delivery(worker).provider_id == "sms-1"


def test_alertmanager_when_critical_fires_then_app_webhook_forwards_one_sms(
    stack, tmp_path: Path
) -> None:
    # Arrange: a real Alertmanager with the shipped config, pointed at the live app.
    binary = alertmanager_binary()
    live, sms, worker = stack
    with bot_api_server() as (telegram_url, _):
        config = tmp_path / "alertmanager.yml"
        render_env = {
            **os.environ,
            **VALUES,
            "TELEGRAM_API_URL": telegram_url,
            "SMS_WEBHOOK_URL": f"{live.url}/hooks/alertmanager/sms",
            "WATCHDOG_URL": f"{live.url}/hooks/alertmanager/watchdog",
        }
        subprocess.run(
            [sys.executable, str(RENDER), str(config)],
            env=render_env,
            check=True,
            capture_output=True,
        )
        config.write_text(config.read_text().replace("group_wait: 30s", "group_wait: 1s"))
        port = free_port()
        log_path = tmp_path / "alertmanager.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(  # noqa: S603 - the Debian binary, our arguments
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        base = f"http://127.0.0.1:{port}"

        def logs() -> str:
            return log_path.read_text()[-3000:] + worker.log_tail()

        try:
            wait_until(lambda: _ready(base), timeout=20, what="alertmanager ready", log=logs)
            now = datetime.now(UTC)
            window = {
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=5)).isoformat(),
            }
            # Act
            post_alerts(
                base,
                [
                    {
                        "labels": {"alertname": "CriticalDrawdown", "severity": "critical"},
                        "annotations": {"summary": "CRITICAL: Drawdown > 15%"},
                        **window,
                    },
                    {
                        "labels": {"alertname": "Watchdog", "severity": "info"},
                        "annotations": {"summary": "Always firing"},
                        **window,
                    },
                ],
            )
            # Assert
            (message,) = sms.wait_sent(1, timeout=40)
            wait_until(
                lambda: WatchdogHeartbeat.objects.exclude(last_seen_at=None).exists(),
                timeout=30,
                what="the Watchdog heartbeat",
                log=logs,
            )
            delivery = sent_delivery(worker)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    assert message["to"] == ["+34600000001"]
    assert message["text"] == "[CRITICAL] CRITICAL: Drawdown > 15%"
    assert delivery.notification.code == "alertmanager.CriticalDrawdown"
    assert delivery.notification.data["labels"]["alertname"] == "CriticalDrawdown"
    assert WatchdogHeartbeat.objects.get().receiver == "watchdog"
    assert len(sms.sent) == 1  # the Watchdog is not an SMS


def _ready(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/-/ready", timeout=1)  # noqa: S310 - loopback
    except OSError:
        return False
    return True
