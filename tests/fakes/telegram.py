"""A loopback fake of the Telegram Bot API (https://core.telegram.org/bots/api).

Speaks the real wire protocol to the real clients (python-telegram-bot, Alertmanager's
telegram receiver): ``POST /bot<token>/<method>`` with JSON or form bodies, answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...}``.

Methods: getMe, deleteWebhook, getUpdates (serves queued updates with offset semantics
and long-polls up to 1 s), sendMessage (records it), anything else -> 404.
A wrong token answers 401 (what Telegram does), ``fail_status`` makes sendMessage fail.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "123456789:AAHfakefakefakefakefakefakefakefake0"  # noqa: S105 - a fake
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "tb", "username": "tb_bot"}

ERRORS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was kicked from the group chat",
    429: "Too Many Requests: retry after 1",
    500: "Internal Server Error",
}


class BotApiState:
    """What the fake received and what it will answer; shared by the handler threads."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []  # sendMessage bodies
        self.calls: list[str] = []  # every method called with the right token, in order
        self.unauthorized = 0  # requests with another token (answered 401)
        self.fail_status: int | None = None  # sendMessage answers this error
        self.fail_times: int | None = None  # ... this many times (None: always)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._cond = threading.Condition()

    # --- what tests call -------------------------------------------------------------------
    def queue_message(
        self, *, chat_id: int, user_id: int | None, text: str | None, chat_type: str = "group"
    ) -> int:
        """Queue an incoming message (an update) for getUpdates; returns its update_id."""
        update_id = next(self._update_ids)
        message: dict[str, Any] = {
            "message_id": 1000 + update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type, "title": "ops"},
        }
        if user_id is not None:
            message["from"] = {"id": user_id, "is_bot": False, "first_name": f"u{user_id}"}
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                length = len(text.split()[0])
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        else:
            message["sticker"] = {
                "file_id": "x",
                "file_unique_id": "y",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
                "type": "regular",
            }
        with self._cond:
            self._updates.append({"update_id": update_id, "message": message})
            self._cond.notify_all()
        return update_id

    def wait_sent(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were sent; returns them (fails the test otherwise)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sent) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the fake Bot API got {len(self.sent)} message(s), expected {count}: "
                        f"{self.sent}"
                    )
                self._cond.wait(left)
            return list(self.sent)

    def wait_consumed(self, update_id: int, timeout: float = 15.0) -> None:
        """Wait until getUpdates was asked for updates after ``update_id`` (it was handled)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(u["update_id"] <= update_id for u in self._updates):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"update {update_id} was never acknowledged")
                self._cond.wait(left)

    # --- the API ---------------------------------------------------------------------------
    def call(self, method: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append(method)
        if method == "getMe":
            return 200, {"ok": True, "result": BOT_USER}
        if method in ("deleteWebhook", "setMyCommands", "close", "logOut"):
            return 200, {"ok": True, "result": True}
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._get_updates(data)}
        if method == "sendMessage":
            return self._send_message(data)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _get_updates(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(data.get("offset") or 0)
        wait = min(float(data.get("timeout") or 0), 1.0)
        deadline = time.monotonic() + wait
        with self._cond:
            # Telegram forgets updates below the offset: they were confirmed.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._cond.notify_all()
            while not self._updates and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            limit = int(data.get("limit") or 100)
            return list(self._updates[:limit])

    def _send_message(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            if self.fail_status is not None and self.fail_times != 0:
                if self.fail_times is not None:
                    self.fail_times -= 1
                status = self.fail_status
                body: dict[str, Any] = {
                    "ok": False,
                    "error_code": status,
                    "description": ERRORS.get(status, "error"),
                }
                if status == 429:
                    body["parameters"] = {"retry_after": 1}
                return status, body
            self.sent.append(data)
            self._cond.notify_all()
            chat_id = data.get("chat_id")
            return 200, {
                "ok": True,
                "result": {
                    "message_id": next(self._message_ids),
                    "date": int(time.time()),
                    "chat": {"id": int(chat_id), "type": "group"},
                    "text": data.get("text", ""),
                },
            }


def _handler(state: BotApiState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self._handle(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        def do_GET(self) -> None:  # noqa: N802
            query = self.path.partition("?")[2]
            self.path = self.path.partition("?")[0]
            self._handle(query.encode(), form=True)

        def _handle(self, body: bytes, *, form: bool = False) -> None:
            prefix, _, method = self.path.rpartition("/")
            if prefix != f"/bot{state.token}":
                state.unauthorized += 1
                return self._reply(
                    401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
                )
            if not form and "json" in self.headers.get("Content-Type", ""):
                data = json.loads(body or b"{}")
            else:
                data = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            status, payload = state.call(method, data)
            self._reply(status, payload)

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            # The client may have stopped waiting (a long poll cut short at shutdown).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            return

    return Handler


@contextmanager
def bot_api_server(token: str = TOKEN) -> Iterator[tuple[str, BotApiState]]:
    """Run the fake on 127.0.0.1 (a free port); yields (base URL, state)."""
    state = BotApiState(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
