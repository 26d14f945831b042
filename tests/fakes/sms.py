"""A loopback fake of an SMS provider's HTTP API, the generic JSON one the app speaks:
``POST /v1/sms`` with ``Authorization: Bearer <token>`` and ``{"to", "from", "text",
"reference"}``; answers 201 ``{"id": "sms-<n>"}``, 401 for another token, or
``fail_status`` while set."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SMS_TOKEN = "sms-provider-token-for-tests"  # noqa: S105 - a fake
PATH = "/v1/sms"


class SmsState:
    def __init__(self, token: str = SMS_TOKEN) -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_status: int | None = None
        self.fail_times: int | None = None
        self._cond = threading.Condition()

    def wait_sent(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sent) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the fake SMS provider got {len(self.sent)} SMS, expected {count}"
                    )
                self._cond.wait(left)
            return list(self.sent)

    def handle(self, path: str, auth: str, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self.requests += 1
            if path != PATH:
                return 404, {"error": "not found"}
            if auth != f"Bearer {self.token}":
                return 401, {"error": "invalid token"}
            if self.fail_status is not None and self.fail_times != 0:
                if self.fail_times is not None:
                    self.fail_times -= 1
                return self.fail_status, {"error": "provider failure"}
            try:
                message = json.loads(body)
            except ValueError:
                return 400, {"error": "body is not JSON"}
            if not message.get("to") or not message.get("text"):
                return 422, {"error": "to and text are required"}
            self.sent.append(message)
            self._cond.notify_all()
            return 201, {"id": f"sms-{len(self.sent)}", "status": "queued"}


@contextmanager
def sms_server(token: str = SMS_TOKEN) -> Iterator[tuple[str, SmsState]]:
    """Run the fake on 127.0.0.1 (a free port); yields (the send URL, state)."""
    state = SmsState(token)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, payload = state.handle(self.path, self.headers.get("Authorization", ""), body)
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{PATH}", state
    finally:
        server.shutdown()
        server.server_close()
