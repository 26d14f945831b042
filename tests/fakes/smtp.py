"""A loopback SMTP server (RFC 5321 subset + AUTH PLAIN/LOGIN, RFC 4954) for e-mail tests.

Enough for smtplib, which Django's SMTP backend drives: EHLO/HELO, AUTH, MAIL, RCPT,
DATA, RSET, NOOP, QUIT. A wrong password answers 535 (what SMTPAuthenticationError
maps); every accepted message is kept with its envelope.
"""

from __future__ import annotations

import base64
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message

SMTP_USER = "tradebot"
SMTP_PASSWORD = "smtp-password-for-tests"  # noqa: S105 - a fake


class SmtpState:
    def __init__(self, user: str = SMTP_USER, password: str = SMTP_PASSWORD) -> None:
        self.user, self.password = user, password
        self.messages: list[tuple[str, list[str], Message]] = []
        self.auth_failures = 0
        self._cond = threading.Condition()

    def wait_messages(
        self, count: int, timeout: float = 15.0
    ) -> list[tuple[str, list[str], Message]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the fake SMTP got {len(self.messages)} message(s)")
                self._cond.wait(left)
            return list(self.messages)

    def add(self, sender: str, rcpts: list[str], data: bytes) -> None:
        with self._cond:
            self.messages.append((sender, rcpts, message_from_bytes(data)))
            self._cond.notify_all()


def _handler(state: SmtpState) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def readline(self) -> str:
            return self.rfile.readline().decode(errors="replace").rstrip("\r\n")

        def check(self, user: str, password: str) -> None:
            if user == state.user and password == state.password:
                self.authed = True
                self.reply("235 2.7.0 Authentication successful")
            else:
                state.auth_failures += 1
                self.reply("535 5.7.8 Authentication credentials invalid")

        def handle(self) -> None:
            self.authed = False
            sender, rcpts = "", []
            self.reply("220 fake-smtp ESMTP ready")
            while True:
                line = self.readline()
                if not line and self.rfile.closed:
                    return
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    self.reply("250-fake-smtp")
                    self.reply("250-AUTH PLAIN")  # one mechanism: smtplib tries each on a 535
                    self.reply("250 8BITMIME")
                elif verb == "HELO":
                    self.reply("250 fake-smtp")
                elif verb == "AUTH":
                    mech, _, initial = arg.partition(" ")
                    if mech.upper() == "PLAIN":
                        if not initial:
                            self.reply("334 ")
                            initial = self.readline()
                        _, user, password = base64.b64decode(initial).decode().split("\0")
                        self.check(user, password)
                    elif mech.upper() == "LOGIN":
                        if initial:
                            user = base64.b64decode(initial).decode()
                        else:
                            self.reply("334 " + base64.b64encode(b"Username:").decode())
                            user = base64.b64decode(self.readline()).decode()
                        self.reply("334 " + base64.b64encode(b"Password:").decode())
                        password = base64.b64decode(self.readline()).decode()
                        self.check(user, password)
                    else:
                        self.reply("504 5.5.4 mechanism not supported")
                elif verb == "MAIL":
                    if state.user and not self.authed:
                        self.reply("530 5.7.0 Authentication required")
                        continue
                    sender, rcpts = arg.partition(":")[2].strip().strip("<>").split(">")[0], []
                    self.reply("250 2.1.0 OK")
                elif verb == "RCPT":
                    rcpts.append(arg.partition(":")[2].strip().strip("<>"))
                    self.reply("250 2.1.5 OK")
                elif verb == "DATA":
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    lines = []
                    while True:
                        raw = self.rfile.readline()
                        if raw in (b".\r\n", b".\n", b""):
                            break
                        lines.append(raw[1:] if raw.startswith(b"..") else raw)
                    state.add(sender, rcpts, b"".join(lines))
                    self.reply("250 2.0.0 queued")
                elif verb in ("RSET", "NOOP"):
                    self.reply("250 OK")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                elif not line:
                    return
                else:
                    self.reply("502 5.5.2 command not recognized")

    return Handler


@contextmanager
def smtp_server(
    user: str = SMTP_USER, password: str = SMTP_PASSWORD
) -> Iterator[tuple[int, SmtpState]]:
    """Run the fake on 127.0.0.1 (a free port); yields (port, state)."""
    state = SmtpState(user, password)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()
        server.server_close()
