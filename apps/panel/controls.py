"""The panel's controls: POST forms (CSRF) -> one risk service each -> message + redirect.

Every control needs an OTP-verified staff user, asks for a reason, and names its actor
"user:<username>" with source "panel". A refusal (ApplicationError: ModeChangeRefused,
RiskLimitInvalid, ...) changes nothing, is shown as an error message, and is audited
("panel.refused") in addition to whatever the service audits itself.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from apps.audit.services import audit_record
from apps.core.access import VerifiedStaffRequiredMixin
from apps.core.exceptions import ApplicationError
from apps.panel.forms import IncidentUpdateForm, KillSwitchForm, ModeSetForm, RiskLimitForm
from apps.panel.views import actor_for
from apps.risk.models import ModeSource
from apps.risk.services import incidents, limits, modes
from apps.trading.services import kill_switch


def _form_errors(form: Any) -> str:
    return "; ".join(
        f"{name}: {' '.join(str(e) for e in errors)}" if name != "__all__" else " ".join(errors)
        for name, errors in form.errors.items()
    )


def _refused(request: HttpRequest, what: str, message: str, data: dict[str, Any]) -> None:
    audit_record(
        actor=actor_for(request),
        action="panel.refused",
        target=what,
        data={"error": message, **data},
    )
    messages.error(request, f"{what} refused: {message}")


def _next_url(request: HttpRequest, default: str) -> str:
    # Only our own pages: a path, not a URL (no open redirect).
    target = request.POST.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


class ModeSetView(VerifiedStaffRequiredMixin, View):
    """Pause, resume (NORMAL) or observation, with a reason."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        back = _next_url(request, reverse("panel:overview"))
        form = ModeSetForm(request.POST)
        if not form.is_valid():
            _refused(request, "mode change", _form_errors(form), {"input": request.POST.dict()})
            return redirect(back)
        mode = form.cleaned_data["mode"]
        try:
            modes.system_mode_set(
                mode=mode,
                actor=actor_for(request),
                source=ModeSource.PANEL.value,
                reason=form.cleaned_data["reason"],
                user=request.user,
                otp_verified=request.user.is_verified(),
            )
        except ApplicationError as exc:
            _refused(request, "mode change", exc.message, {"mode": mode.value})
            return redirect(back)
        messages.success(request, f"Mode is now {mode.value.upper()}.")
        return redirect(back)


class KillSwitchView(VerifiedStaffRequiredMixin, View):
    """Step 1 (reason, no confirm): a confirmation page. Step 2 (confirm): engage."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = KillSwitchForm(request.POST)
        if not form.is_valid():
            _refused(request, "kill switch", _form_errors(form), {})
            return redirect("panel:overview")
        reason = form.cleaned_data["reason"]
        if not form.cleaned_data["confirm"]:
            return render(request, "panel/kill_confirm.html", {"reason": reason})
        try:
            report = kill_switch.kill_switch_engage(
                actor=actor_for(request), source=ModeSource.PANEL.value, reason=reason
            )
        except ApplicationError as exc:
            _refused(request, "kill switch", exc.message, {})
            return redirect("panel:overview")
        cleaned = (
            f" The reason was stored cleaned ({'; '.join(report.reason_cleaned)})."
            if report.reason_cleaned
            else ""
        )
        messages.warning(
            request,
            f"KILL engaged: {report.cancels_sent} cancel(s) sent, "
            f"{len(report.closing_orders)} closing order(s), "
            f"{'every position flat' if report.flat else 'positions NOT yet flat'}. "
            f"Write and close the incident report before resuming.{cleaned}",
        )
        return redirect("panel:overview")


class RiskLimitSetView(VerifiedStaffRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = RiskLimitForm(request.POST)
        if not form.is_valid():
            _refused(request, "risk limits", _form_errors(form), {})
            return redirect("panel:risk")
        values = form.limit_values()
        try:
            limits.risk_limit_set(
                account_id=form.cleaned_data["account_id"], values=values, actor=actor_for(request)
            )
        except ApplicationError as exc:
            _refused(request, "risk limits", exc.message, {"values": values})
            return redirect("panel:risk")
        messages.success(request, "Risk limits saved.")
        return redirect("panel:risk")


class IncidentUpdateView(VerifiedStaffRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, incident_id: int) -> HttpResponse:
        back = reverse("panel:incident", args=[incident_id])
        form = IncidentUpdateForm(request.POST)
        if not form.is_valid():
            _refused(request, "incident report", _form_errors(form), {"incident": incident_id})
            return redirect(back)
        try:
            incidents.incident_update(
                incident_id=incident_id, actor=actor_for(request), **form.cleaned_data
            )
        except ApplicationError as exc:
            _refused(request, "incident report", exc.message, {"incident": incident_id})
            return redirect(back)
        messages.success(request, "Incident report saved.")
        return redirect(back)


class IncidentCloseView(VerifiedStaffRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, incident_id: int) -> HttpResponse:
        back = reverse("panel:incident", args=[incident_id])
        try:
            incidents.incident_close(
                incident_id=incident_id,
                actor=actor_for(request),
                user=request.user,
                otp_verified=request.user.is_verified(),
            )
        except ApplicationError as exc:
            _refused(request, "closing the incident", exc.message, {"incident": incident_id})
            return redirect(back)
        messages.success(request, "Incident closed: the system may leave KILL to OBSERVATION.")
        return redirect(back)
