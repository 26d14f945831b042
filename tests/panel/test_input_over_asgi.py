"""The kill switch and the JSON API's bad-input answers through the ASGI application (the
stack uvicorn serves: ASGIRequest reading the body stream, CSRF on, the real session).

Named to sort after test_browser.py: an async test run before the browser tests in the
same process leaves them without a live websocket (true of test_consumer.py as well).
"""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from django.db import connections
from django.test import Client

from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange
from apps.risk.services.modes import system_mode_get
from tests.panel.conftest import otp_login
from tests.panel.factories import trading_history_create
from tradebot.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

CSRF = "k" * 32  # a CSRF secret: the cookie and the header carry the same value


@pytest_asyncio.fixture(autouse=True)
async def _close_db_connections(monkeypatch):
    # Each ASGI request runs its view in a thread of its own: with CONN_MAX_AGE its
    # connection would outlive the test and block the test database drop. Closed at the
    # end of each request instead.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def headers(operator) -> list[tuple[bytes, bytes]]:
    client = Client()
    otp_login(client, operator)
    session = client.cookies["sessionid"].value
    return [
        (b"host", b"testserver"),
        (b"content-type", b"application/json"),
        (b"cookie", f"sessionid={session}; csrftoken={CSRF}".encode()),
        (b"x-csrftoken", CSRF.encode()),
    ]


async def _post(path: str, body: bytes, headers) -> tuple[int, dict]:
    communicator = HttpCommunicator(
        application,
        "POST",
        path,
        body=body,
        headers=[*headers, (b"content-length", str(len(body)).encode())],
    )
    response = await communicator.get_response(timeout=30)
    await communicator.wait(timeout=30)  # the request finished: its connection closed
    return response["status"], json.loads(response["body"])


@pytest.mark.asyncio
async def test_kill_over_asgi_when_reason_has_nul_and_surrogate_then_engaged_and_cleaned(headers):
    # Arrange
    await database_sync_to_async(trading_history_create)(points=3)

    # Act
    status, body = await _post(
        "/api/kill", b'{"reason": "fat\\u0000finger\\udc00", "confirm": true}', headers
    )

    # Assert
    assert status == 200, body
    assert body["reason"] == "fat\ufffdfinger\ufffd"
    assert len(body["reason_cleaned"]) == 2
    assert await database_sync_to_async(system_mode_get)() is SystemMode.KILL


@pytest.mark.asyncio
async def test_mode_over_asgi_when_body_is_10_mb_then_413_and_unchanged(headers):
    # Arrange
    await database_sync_to_async(trading_history_create)(points=3)
    body = b'{"mode": "pause", "reason": "' + b"x" * (10 * 1024 * 1024) + b'"}'

    # Act
    status, answer = await _post("/api/mode", body, headers)

    # Assert
    assert status == 413
    assert "body too large" in answer["error"]
    assert await database_sync_to_async(system_mode_get)() is SystemMode.NORMAL
    assert not await database_sync_to_async(ModeChange.objects.exists)()
