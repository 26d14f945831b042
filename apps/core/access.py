"""Who may see or act on any operator page: an OTP-verified staff user.

Shared by the panel, the ML page and the operations pages (and the websocket), so the
rule lives in one place below every app that renders a page.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.mixins import AccessMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_otp import user_has_device


def bearer_token_ok(request: HttpRequest) -> bool:
    """The request carries ``Authorization: Bearer <METRICS_BEARER_TOKEN>`` (Prometheus).

    No token configured (dev, test): True. Compared in constant time.
    """
    expected = settings.METRICS_BEARER_TOKEN
    if not expected:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


def bearer_token_configured() -> bool:
    return bool(settings.METRICS_BEARER_TOKEN)


def is_verified_staff(user: Any) -> bool:
    """Authenticated, active, staff, and verified by a second factor in this session."""
    if user is None or not user.is_authenticated or not user.is_active or not user.is_staff:
        return False
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


class VerifiedStaffRequiredMixin(AccessMixin):
    """Anonymous -> the two-factor login; password only -> log in again with the code, or,
    without an authenticator, the page saying who can issue one (a password never enrols a
    device); verified but not staff -> 403."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return self.handle_no_permission()
        if not user.is_verified():
            if not user_has_device(user):
                return redirect_to_login(request.get_full_path(), "enrolment_required")
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not user.is_staff:
            raise PermissionDenied("staff only")
        return super().dispatch(request, *args, **kwargs)
