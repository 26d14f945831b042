"""The panel websocket through the real ASGI stack and the real Redis channel layer."""

from __future__ import annotations

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from apps.core.realtime import GROUP_PANEL, broadcast_now
from apps.panel.auth import SESSION_LAST_SEEN_KEY, SESSION_STARTED_KEY
from apps.panel.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, EVENTS
from tests.panel.conftest import otp_login, totp_device_for
from tradebot.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest_asyncio.fixture(autouse=True)
async def _close_consumer_db_connections():
    yield
    # The auth middleware reads the session in the thread-sensitive executor; with
    # CONN_MAX_AGE that connection would outlive the test and block the test database drop.
    await database_sync_to_async(connections.close_all)()


def _session_cookie(
    user, *, verified: bool = True, client: Client | None = None
) -> tuple[bytes, bytes]:
    client = client or Client()
    otp_login(client, user, verified=verified)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.fixture
def staff_cookie(admin_user):
    return _session_cookie(admin_user)


@pytest.fixture
def viewer_cookie(django_user_model):
    return _session_cookie(django_user_model.objects.create_user("viewer", password="x"))


@pytest.fixture
def password_only_cookie(admin_user):
    # A device is enrolled, but this session never gave the code.
    totp_device_for(admin_user)
    return _session_cookie(admin_user, verified=False)


def _communicator(*headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/panel/", headers=[ORIGIN, *headers])


@pytest.mark.asyncio
async def test_connect_when_anonymous_then_refused_with_4401():
    # Arrange
    communicator = _communicator()

    # Act
    connected, code = await communicator.connect()

    # Assert
    assert not connected
    assert code == CLOSE_UNAUTHENTICATED
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_connect_when_password_only_then_refused_with_4401(password_only_cookie):
    # Arrange
    communicator = _communicator(password_only_cookie)

    # Act
    connected, code = await communicator.connect()

    # Assert
    assert not connected
    assert code == CLOSE_UNAUTHENTICATED
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_connect_when_device_of_another_user_in_session_then_refused(
    admin_user, django_user_model
):
    # Arrange: a session claiming a (confirmed) device that belongs to someone else.
    other = await database_sync_to_async(django_user_model.objects.create_user)(
        "other", password="x"
    )
    foreign = await database_sync_to_async(totp_device_for)(other)

    def _cookie():
        client = Client()
        client.force_login(admin_user)
        session = client.session
        session["otp_device_id"] = foreign.persistent_id
        session.save()
        return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    communicator = _communicator(await database_sync_to_async(_cookie)())

    # Act
    connected, code = await communicator.connect()

    # Assert
    assert not connected
    assert code == CLOSE_UNAUTHENTICATED
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_connect_when_session_idle_30_minutes_then_refused(admin_user):
    # Arrange: a verified session whose last request was 31 minutes ago.
    def _cookie():
        client = Client()
        cookie = _session_cookie(admin_user, client=client)
        session = client.session
        import time

        session[SESSION_LAST_SEEN_KEY] = time.time() - 31 * 60
        session.save()
        return cookie

    communicator = _communicator(await database_sync_to_async(_cookie)())

    # Act
    connected, code = await communicator.connect()

    # Assert
    assert not connected
    assert code == CLOSE_UNAUTHENTICATED
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_connect_when_not_staff_then_refused_with_4403(viewer_cookie):
    # Arrange
    communicator = _communicator(viewer_cookie)

    # Act
    connected, code = await communicator.connect()

    # Assert
    assert not connected
    assert code == CLOSE_FORBIDDEN
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_connect_when_foreign_origin_then_refused(staff_cookie):
    # Arrange
    communicator = WebsocketCommunicator(
        application, "/ws/panel/", headers=[(b"origin", b"http://evil.example"), staff_cookie]
    )

    # Act
    connected, _ = await communicator.connect()

    # Assert
    assert not connected
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_broadcast_when_staff_connected_then_every_event_reaches_the_socket(staff_cookie):
    # Arrange
    communicator = _communicator(staff_cookie)
    connected, _ = await communicator.connect()
    assert connected
    try:
        for event in EVENTS:
            payload = {"event": event, "equity": "10123.45000000", "ts": "2024-03-01T10:00:00Z"}

            # Act
            await sync_to_async(broadcast_now)(GROUP_PANEL, event, payload)

            # Assert
            message = await _receive_event(communicator, event)
            assert message == {"type": event, "payload": payload}
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
async def test_receive_when_browser_sends_anything_then_ignored_and_still_connected(staff_cookie):
    # Arrange
    communicator = _communicator(staff_cookie)
    connected, _ = await communicator.connect()
    assert connected
    try:
        # Act
        await communicator.send_to(text_data='{"type": "mode.set", "mode": "kill"}')
        await communicator.send_to(text_data="not json")

        # Assert: nothing comes back (only group events may arrive), and the socket still
        # gets events.
        while not await communicator.receive_nothing(timeout=0.3):
            reply = await communicator.receive_json_from(timeout=1)
            assert reply["type"] in EVENTS, reply
        await sync_to_async(broadcast_now)(GROUP_PANEL, "mode.changed", {"mode": "pause"})
        message = await _receive_event(communicator, "mode.changed", {"mode": "pause"})
        assert message["payload"] == {"mode": "pause"}
    finally:
        await communicator.disconnect()


async def _receive_event(communicator, event: str, payload: dict | None = None) -> dict:
    """The next message of type ``event`` (and ``payload``, when given). The panel group is
    shared: events from other code in this process (a test's engine still broadcasting)
    may arrive too, and are skipped."""
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == event and (payload is None or message["payload"] == payload):
            return message


async def _group_members() -> set[str]:
    """The channels of this process subscribed to the panel group (the pub/sub layer keeps
    group membership per process and subscribes its Redis connection to the group)."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    members: set[str] = set()
    for loop_layer in layer._layers.values():
        members |= set(loop_layer.groups.get(loop_layer._get_group_channel_name(GROUP_PANEL), ()))
    return members


@pytest.mark.asyncio
async def test_disconnect_then_leaves_the_group(staff_cookie):
    # Arrange (other test processes may share this Redis: compare, don't expect empty)
    before = await _group_members()
    communicator = _communicator(staff_cookie)
    connected, _ = await communicator.connect()
    assert connected
    joined = await _group_members() - before
    assert len(joined) == 1

    # Act
    await communicator.disconnect()

    # Assert
    assert not (await _group_members()) & joined


# --- the socket ends with the login (issue 13, hole 7) --------------------------------------


async def _closed_with(communicator: WebsocketCommunicator, timeout: float) -> int | None:
    """The close code the server sent within ``timeout`` (events before it are skipped),
    or None when the socket is still open. (receive_output's own timeout would cancel
    the consumer: wait with receive_nothing, then read what came.)"""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await communicator.receive_nothing(timeout=0.1, interval=0.01):
            continue
        output = await communicator.receive_output(timeout=1)
        if output["type"] == "websocket.close":
            return output.get("code")
    return None


@pytest.mark.asyncio
async def test_logout_when_socket_open_then_closed_at_once_with_4401(admin_user):
    # Arrange: a verified session with its panel socket open (the periodic check is far
    # off: only the logout itself can close it in time).
    client = Client()
    cookie = await database_sync_to_async(_session_cookie)(admin_user, client=client)
    communicator = _communicator(cookie)
    connected, _ = await communicator.connect()
    assert connected
    try:
        # Act
        response = await database_sync_to_async(client.post)("/account/logout/")
        assert response.status_code == 302

        # Assert
        assert await _closed_with(communicator, timeout=5) == CLOSE_UNAUTHENTICATED
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
async def test_logout_when_another_session_logs_out_then_this_socket_stays(admin_user):
    # Arrange: two sessions of the same user; the second logs out.
    cookie = await database_sync_to_async(_session_cookie)(admin_user)
    other = Client()
    await database_sync_to_async(_session_cookie)(admin_user, client=other)
    communicator = _communicator(cookie)
    connected, _ = await communicator.connect()
    assert connected
    try:
        # Act
        await database_sync_to_async(other.post)("/account/logout/")

        # Assert: still open and still streaming.
        assert await _closed_with(communicator, timeout=1) is None
        await sync_to_async(broadcast_now)(GROUP_PANEL, "mode.changed", {"mode": "pause"})
        await _receive_event(communicator, "mode.changed", {"mode": "pause"})
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
async def test_session_when_idle_past_30_minutes_while_socket_open_then_closed_with_4401(
    admin_user, settings, clock
):
    # Arrange: sessions are re-read every 0.2 s; the session was active at "now".
    settings.PANEL_WS_SESSION_CHECK_SECONDS = 0.2

    def _cookie():
        client = Client()
        cookie = _session_cookie(admin_user, client=client)
        session = client.session
        session[SESSION_STARTED_KEY] = clock.now
        session[SESSION_LAST_SEEN_KEY] = clock.now
        session.save()
        return cookie

    communicator = _communicator(await database_sync_to_async(_cookie)())
    connected, _ = await communicator.connect()
    assert connected
    try:
        # While the session is alive the checks leave the socket open.
        clock.advance(29 * 60)
        assert await _closed_with(communicator, timeout=1) is None

        # Act: 31 minutes without a request.
        clock.advance(2 * 60)

        # Assert
        assert await _closed_with(communicator, timeout=5) == CLOSE_UNAUTHENTICATED
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
async def test_session_when_deleted_from_the_store_then_socket_closed_by_the_check(
    admin_user, settings
):
    # Arrange: a logout the signal could not announce (the session row is simply gone).
    settings.PANEL_WS_SESSION_CHECK_SECONDS = 0.2
    client = Client()
    cookie = await database_sync_to_async(_session_cookie)(admin_user, client=client)
    communicator = _communicator(cookie)
    connected, _ = await communicator.connect()
    assert connected
    try:
        # Act
        from django.contrib.sessions.models import Session

        await database_sync_to_async(Session.objects.all().delete)()

        # Assert
        assert await _closed_with(communicator, timeout=5) == CLOSE_UNAUTHENTICATED
    finally:
        await communicator.disconnect()
