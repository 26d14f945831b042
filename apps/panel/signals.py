"""Logout closes the panel's websockets of that session at once (apps.panel.consumers).

``user_logged_out`` is sent by ``django.contrib.auth.logout``: the logout view and the
session limits middleware (idle / absolute). The event goes straight out (not on commit:
a logout is not a database change to wait for) to the session's group.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from apps.core.realtime import broadcast_now
from apps.panel.ws_auth import session_group


@receiver(user_logged_out, dispatch_uid="panel.close_sockets_at_logout")
def sockets_close_at_logout(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        broadcast_now(session_group(session_key), "session.ended", {"reason": "logged out"})
