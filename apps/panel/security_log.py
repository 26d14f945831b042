"""Logins in the audit trail: who, when, from which address and browser (issue 13, item 10).

Every successful login (after the second factor), failed password, wrong authenticator or
backup code, logout and lockout is an ``AuditEvent`` (``auth.*``), shown on the panel's
Security page. The passwords and codes themselves are never recorded.
"""

from __future__ import annotations

from typing import Any

from axes.helpers import get_client_ip_address
from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.views.generic import TemplateView
from two_factor.views import LoginView

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.core.access import VerifiedStaffRequiredMixin
from apps.core.text import printable

AUTH_PREFIX = "auth."
AGENT_MAX = 256
NAME_MAX = 150
SHOWN = 200


def _clean(text: object, limit: int) -> str:
    return printable(str(text or ""), limit)


def auth_event(
    request: HttpRequest | None, action: str, username: object, **data: Any
) -> AuditEvent:
    name = _clean(username, NAME_MAX)
    meta = getattr(request, "META", {}) if request is not None else {}
    ip = get_client_ip_address(request) if request is not None else None
    return audit_record(
        actor=f"user:{name}" if name else "anonymous",
        action=AUTH_PREFIX + action,
        target=name,
        data={
            "ip": ip or "",
            "user_agent": _clean(meta.get("HTTP_USER_AGENT", ""), AGENT_MAX),
            **data,
        },
    )


@receiver(user_logged_in, dispatch_uid="audit-login")
def _logged_in(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    device = getattr(user, "otp_device", None)
    auth_event(request, "login", user.get_username(), device=getattr(device, "name", ""))


@receiver(user_logged_out, dispatch_uid="audit-logout")
def _logged_out(sender: Any, request: HttpRequest, user: Any, **_: Any) -> None:
    if user is not None:
        auth_event(request, "logout", user.get_username())


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    auth_event(request, "login_failed", credentials.get("username", ""), reason="password")


@receiver(user_locked_out, dispatch_uid="audit-lockout")
def _locked_out(sender: Any, request: HttpRequest, username: str, **_: Any) -> None:
    auth_event(request, "lockout", username)


class AuditedLoginView(LoginView):
    """django-two-factor-auth's login; a wrong authenticator or backup code is audited."""

    def get_prefix(self, request: HttpRequest, *args: Any, **kwargs: Any) -> str:
        return "login_view"  # the wizard's form prefix, as the library names its own view

    def render(self, form: Any = None, **kwargs: Any) -> HttpResponse:
        step = self.steps.current
        if (
            form is not None
            and form.is_bound
            and form.errors
            and step in (self.TOKEN_STEP, self.BACKUP_STEP)
        ):
            user = self.get_user()
            auth_event(
                self.request,
                "login_failed",
                user.get_username() if user else "",
                reason="backup code" if step == self.BACKUP_STEP else "authenticator code",
            )
        return super().render(form, **kwargs)


class SecurityLogView(VerifiedStaffRequiredMixin, TemplateView):
    """The last logins, failures, logouts, lockouts and enrolments."""

    template_name = "panel/security.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["events"] = list(
            AuditEvent.objects.filter(action__startswith=AUTH_PREFIX).order_by("-id")[:SHOWN]
        )
        context["shown"] = SHOWN
        return context
