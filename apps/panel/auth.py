"""Who may see the panel: an OTP-verified staff user (pages, JSON endpoints, websocket).

Also the small hooks the login stack needs: the username django-axes counts failures
for, and the session limits (absolute and idle) shared by HTTP and the websocket.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest

# Session keys (epoch seconds): when the session logged in, and its last request.
SESSION_STARTED_KEY = "panel_session_started"
SESSION_LAST_SEEN_KEY = "panel_session_last_seen"


def now_ts() -> float:
    """The clock of the session limits (tests move it)."""
    return time.time()


def axes_username(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str | None:
    """The username of a login attempt: authenticate()'s credentials, else the wizard's field."""
    if credentials and credentials.get("username"):
        return str(credentials["username"])
    data = getattr(request, "POST", None) or {}
    return data.get("auth-username") or data.get("username")


def session_expired_reason(session: Any, now: float | None = None) -> str | None:
    """Why a logged-in session must end now ("absolute" / "idle"), or None.

    A session without a start time is one that has just logged in: not expired.
    """
    now = now_ts() if now is None else now
    started = session.get(SESSION_STARTED_KEY)
    last_seen = session.get(SESSION_LAST_SEEN_KEY)
    if started is not None and now - float(started) >= settings.SESSION_ABSOLUTE_SECONDS:
        return "absolute"
    if last_seen is not None and now - float(last_seen) >= settings.SESSION_IDLE_SECONDS:
        return "idle"
    return None
