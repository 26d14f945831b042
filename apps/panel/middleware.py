"""Session limits: a session ends 12 h after login (absolute) and after 30 min idle.

Runs after AuthenticationMiddleware and BEFORE django_otp's OTPMiddleware, so that a
session ended here reaches the views as an anonymous (and unverified) user.
The stored session and its cookie also expire at the absolute limit (set_expiry with a
date), so an ended session is gone even if nothing reads it again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

from apps.panel import auth
from apps.panel.auth import SESSION_LAST_SEEN_KEY, SESSION_STARTED_KEY, session_expired_reason

MESSAGES = {
    "absolute": "Your session reached its 12-hour limit: log in again.",
    "idle": "Your session ended after 30 minutes without activity: log in again.",
}


class SessionLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = auth.now_ts()  # one clock for HTTP and the websocket (tests move it)
            reason = session_expired_reason(request.session, now)
            if reason is not None:
                logout(request)
                messages.info(request, MESSAGES[reason])
            else:
                if SESSION_STARTED_KEY not in request.session:
                    request.session[SESSION_STARTED_KEY] = now
                    request.session.set_expiry(
                        datetime.fromtimestamp(now + settings.SESSION_ABSOLUTE_SECONDS, tz=UTC)
                    )
                request.session[SESSION_LAST_SEEN_KEY] = now
        return self.get_response(request)
