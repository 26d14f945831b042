"""The websocket's view of the login: django_otp verification and the session limits.

Channels' AuthMiddlewareStack puts the session's user on ``scope["user"]``; it knows
nothing of django_otp. This middleware, inside that stack, does what
``django_otp.middleware.OTPMiddleware`` does for HTTP: it sets ``user.otp_device`` from
the session's verified device (only a confirmed device of that same user counts) and
``user.is_verified()``. A session past its absolute or idle limit
(apps.panel.middleware) is treated as logged out.

asgi.py: ``AllowedHostsOriginValidator(OTPAuthMiddlewareStack(URLRouter(...)))``.
"""

from __future__ import annotations

import functools
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import is_verified
from django_otp.models import Device

from apps.panel.auth import session_expired_reason


def _unverified(user: Any) -> Any:
    user.otp_device = None
    user.is_verified = functools.partial(is_verified, user)
    return user


def otp_user_for_scope(scope: dict[str, Any]) -> Any:
    """The scope's user with ``otp_device`` / ``is_verified()`` set (sync: reads the DB)."""
    user = scope.get("user")
    session = scope.get("session")
    if user is None or not user.is_authenticated or session is None:
        return _unverified(AnonymousUser())
    if session_expired_reason(session) is not None:
        return _unverified(AnonymousUser())
    # The lazy user of AuthMiddleware: work on the real object.
    real = getattr(user, "_wrapped", user)
    _unverified(real)
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    if persistent_id:
        device = Device.from_persistent_id(persistent_id)
        if device is not None and device.user_id == real.pk and device.confirmed:
            real.otp_device = device
    return real


class OTPWebsocketMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        scope["user"] = await database_sync_to_async(otp_user_for_scope)(scope)
        return await super().__call__(scope, receive, send)


def OTPAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - named like AuthMiddlewareStack
    return AuthMiddlewareStack(OTPWebsocketMiddleware(inner))
