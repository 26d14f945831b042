"""A password alone can never add a second factor (issue 13, item 6).

django-two-factor-auth's setup wizard would let whoever knows a staff password enrol their
own authenticator; it is closed to sessions that logged in with a password only (a verified
session may still use it). Authenticators are issued on the server instead
(``apps.accounts.staff``: ``manage.py staff_create`` / ``staff_totp_reset``), and a
password-only session without one is shown who can issue it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View
from two_factor.views import SetupView


def _enrolment_closed(request: HttpRequest) -> HttpResponse:
    return render(request, "panel/enrolment_required.html", status=403)


class GuardedSetupView(SetupView):
    """django-two-factor-auth's setup wizard, for sessions past the second factor only."""

    def get_prefix(self, request: HttpRequest, *args: Any, **kwargs: Any) -> str:
        return "setup_view"  # the wizard's form prefix, as the library names its own view

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not user.is_verified():  # type: ignore[attr-defined]
            return _enrolment_closed(request)
        return super().dispatch(request, *args, **kwargs)


class EnrolmentRequiredView(View):
    """Where a password-only session without an authenticator is sent: who can issue one."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return _enrolment_closed(request)
