"""The reconciliation page: broker sessions, runs, discrepancies; run now; resolve (2FA staff)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from apps.audit.services import audit_record
from apps.brokers import selectors
from apps.brokers.models import ReconciliationTrigger
from apps.brokers.services.reconcile import reconcile_all
from apps.brokers.services.resolution import discrepancy_resolve
from apps.core.access import VerifiedStaffRequiredMixin
from apps.core.exceptions import ApplicationError
from apps.risk.services.modes import system_state_get


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


class ResolveForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("adopt", "adopt the broker's state"), ("investigated", "mark investigated")]
    )
    note = forms.CharField(max_length=2000, strip=True)


class ReconciliationView(VerifiedStaffRequiredMixin, TemplateView):
    template_name = "brokers/reconciliation.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            mode=system_state_get().mode,
            sessions=selectors.broker_sessions(),
            runs=selectors.reconciliation_runs(),
            open=selectors.discrepancies_open(),
            resolved=selectors.discrepancies_resolved(),
            form=ResolveForm(),
        )
        return context


class ReconcileNowView(VerifiedStaffRequiredMixin, View):
    """The panel button: reconcile every account now (the same path as the schedule)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        runs = reconcile_all(
            trigger=ReconciliationTrigger.PANEL, actor=_actor(request), purpose="control"
        )
        for run in runs:
            text = (
                f"{run.account.name}: {run.outcome} ({run.discrepancies_found} discrepancies, "
                f"{run.fills_applied} fills applied, {run.orders_settled} orders settled)"
                + (f": {run.error}" if run.error else "")
            )
            (messages.success if run.outcome == "clean" else messages.error)(request, text)
        if not runs:
            messages.info(request, "No accounts to reconcile.")
        return redirect(reverse("brokers:reconciliation"))


class DiscrepancyResolveView(VerifiedStaffRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, discrepancy_id: int) -> HttpResponse:
        form = ResolveForm(request.POST)
        back = redirect(reverse("brokers:reconciliation"))
        if not form.is_valid():
            errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            audit_record(
                actor=_actor(request),
                action="panel.refused",
                target=f"discrepancy:{discrepancy_id}",
                data={"error": errors},
            )
            messages.error(request, f"resolution refused: {errors}")
            return back
        try:
            row = discrepancy_resolve(
                discrepancy_id=discrepancy_id,
                action=form.cleaned_data["action"],
                note=form.cleaned_data["note"],
                user=request.user,
                otp_verified=request.user.is_verified(),
            )
        except ApplicationError as exc:
            audit_record(
                actor=_actor(request),
                action="panel.refused",
                target=f"discrepancy:{discrepancy_id}",
                data={"error": exc.message},
            )
            messages.error(request, f"resolution refused: {exc.message}")
            if exc.http_status == 404:  # a stale page or a made-up id: say so, with its status
                page = ReconciliationView()
                page.setup(request)
                return render(request, page.template_name, page.get_context_data(), status=404)
            return back
        messages.success(request, f"Discrepancy #{row.pk} {row.status}.")
        return back
