"""The websocket's view of the login: django_otp verification and the session limits.

Channels' AuthMiddlewareStack puts the session's user on ``scope["user"]``; it knows
nothing of django_otp. This middleware, inside that stack, does what
``django_otp.middleware.OTPMiddleware`` does for HTTP: it sets ``user.otp_device`` from
the session's verified device (only a confirmed device of that same user counts) and
``user.is_verified()``. A session past its absolute or idle limit
(apps.panel.middleware) is treated as logged out.

An open socket outlives that check, so the consumer re-checks: ``session_end_reason``
re-reads the stored session (periodically), and ``session_group`` names the group a
logout is announced to (apps.panel.signals).

asgi.py: ``AllowedHostsOriginValidator(OTPAuthMiddlewareStack(URLRouter(...)))``.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
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


def session_group(session_key: str) -> str:
    """The channel-layer group of one login session's sockets (told when it logs out).

    A hash, not the key: group names travel in Redis channel names."""
    return "panel.session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def _session_store(session_key: str) -> SessionBase:
    engine = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    return engine(session_key)  # type: ignore[no-any-return]


def session_end_reason(session_key: str, user_id: Any) -> str | None:
    """Why an open socket of this session must close now, or None (sync: reads the DB).

    Re-reads the stored session as HTTP would: logged out (gone, or another user), past
    its absolute or idle limit, the password changed, the user no longer active staff,
    or the second factor no longer in the session.
    """
    session = _session_store(session_key)
    if not session.exists(session_key) or str(session.get(SESSION_KEY)) != str(user_id):
        return "logged out"
    expired = session_expired_reason(session)
    if expired is not None:
        return f"session ended ({expired})"
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not (user.is_active and user.is_staff):
        return "no longer an active staff user"
    if not constant_time_compare(session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
        return "password changed"
    if not session.get(DEVICE_ID_SESSION_KEY):
        return "two-factor verification gone"
    return None


class OTPWebsocketMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        scope["user"] = await database_sync_to_async(otp_user_for_scope)(scope)
        return await super().__call__(scope, receive, send)


def OTPAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - named like AuthMiddlewareStack
    return AuthMiddlewareStack(OTPWebsocketMiddleware(inner))
