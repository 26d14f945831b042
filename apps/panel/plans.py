"""Trading plans in the panel: the list, a create form, an edit page, (de)activate buttons,
and the JSON endpoints for scripts. Every write goes through ``apps.engine.services``
(validated by ``TradingPlan.clean``, audited with actor ``user:<username>``); a refused
input is shown on its form field (status 400), audited ``panel.refused`` / ``api.refused``,
and changes nothing.

    GET  /api/plans          -> {"version": "...", "plans": [plan, ...]}
    POST /api/plans          {"account": "paper" (name or id; default ENGINE_ACCOUNT),
                              "venue": "paper", "instrument": "BTC-USD", "timeframe": "1m",
                              "strategy": "sma_cross", "params": {"fast": "10", "slow": "30"},
                              "stake": "1000", "active": true} -> 201 plan
    GET  /api/plans/<id>     -> plan
    POST /api/plans/<id>     {any of venue, instrument, timeframe, strategy, params, stake,
                              active} -> plan
    A ValidationError is 400 {"error": "field: message; ...", "fields": {field: [messages]}}.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View

from apps.audit.services import audit_record
from apps.core.access import VerifiedStaffRequiredMixin
from apps.core.realtime import jsonable
from apps.engine.forms import TradingPlanForm
from apps.engine.models import TradingPlan
from apps.engine.selectors import plan_list, plans_version
from apps.engine.services import (
    EDITABLE_FIELDS,
    plan_create,
    plan_set_active,
    plan_snapshot,
    plan_update,
    validation_text,
)
from apps.panel.api import ApiInputError, VerifiedStaffApi
from apps.panel.views import actor_for


def _refused(request: HttpRequest, what: str, message: str, data: dict[str, Any]) -> None:
    audit_record(
        actor=actor_for(request),
        action="panel.refused",
        target=what,
        data={"error": message, **data},
    )


def _changed_fields(form: TradingPlanForm) -> dict[str, Any]:
    return {n: form.cleaned_data[n] for n in form.changed_data if n in EDITABLE_FIELDS}


class PlanListView(VerifiedStaffRequiredMixin, View):
    """GET: every plan and an empty create form. POST: create a plan."""

    template_name = "panel/plans.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._page(request, TradingPlanForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TradingPlanForm(request.POST)
        if form.is_valid():
            try:
                plan = plan_create(actor=actor_for(request), **form.cleaned_data)
            except ValidationError as exc:  # e.g. a twin created meanwhile
                form.add_error(None, exc)
            else:
                messages.success(request, f"Plan {plan.pk} created: {plan}.")
                return redirect("panel:plans")
        _refused(request, "plan create", form.errors.as_text(), {"input": request.POST.dict()})
        messages.error(request, "Plan not created: fix the fields marked below.")
        return self._page(request, form, status=400)

    def _page(self, request: HttpRequest, form: TradingPlanForm, status: int = 200) -> HttpResponse:
        context = {"plans": plan_list(), "form": form, "version": plans_version()}
        return render(request, self.template_name, context, status=status)


class PlanEditView(VerifiedStaffRequiredMixin, View):
    """GET: the plan's form. POST: save what changed."""

    template_name = "panel/plan_edit.html"

    def get(self, request: HttpRequest, plan_id: int) -> HttpResponse:
        plan = get_object_or_404(TradingPlan, pk=plan_id)
        return render(
            request, self.template_name, {"plan": plan, "form": TradingPlanForm(instance=plan)}
        )

    def post(self, request: HttpRequest, plan_id: int) -> HttpResponse:
        plan = get_object_or_404(TradingPlan, pk=plan_id)
        form = TradingPlanForm(request.POST, instance=plan)
        if form.is_valid():
            try:
                plan_update(plan=plan, actor=actor_for(request), **_changed_fields(form))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Plan {plan.pk} saved.")
                return redirect("panel:plans")
        _refused(
            request,
            f"plan:{plan_id} edit",
            form.errors.as_text(),
            {"input": request.POST.dict()},
        )
        messages.error(request, "Plan not saved: fix the fields marked below.")
        fresh = TradingPlan.objects.get(pk=plan_id)  # the form changed its instance in memory
        return render(request, self.template_name, {"plan": fresh, "form": form}, status=400)


class PlanActiveView(VerifiedStaffRequiredMixin, View):
    """POST active=1 (activate) or active=0 (deactivate)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, plan_id: int) -> HttpResponse:
        plan = get_object_or_404(TradingPlan, pk=plan_id)
        raw = request.POST.get("active", "")
        if raw not in ("0", "1"):
            message = f"active must be 1 (activate) or 0 (deactivate), got {raw!r}"
            _refused(request, f"plan:{plan_id} active", message, {})
            messages.error(request, f"Plan {plan_id}: {message}")
            return redirect("panel:plans")
        try:
            plan = plan_set_active(plan=plan, active=raw == "1", actor=actor_for(request))
        except ValidationError as exc:  # activating a plan that is no longer valid
            message = validation_text(exc)
            _refused(request, f"plan:{plan_id} active", message, {"active": raw})
            messages.error(request, f"Plan {plan_id} not activated: {message}")
            return redirect("panel:plans")
        state = "active" if plan.active else "inactive"
        messages.success(request, f"Plan {plan.pk} ({plan}) is {state}.")
        return redirect(reverse("panel:plans"))


def plan_json(plan: TradingPlan) -> dict[str, Any]:
    return {
        "id": plan.pk,
        "account_id": plan.account_id,
        **plan_snapshot(plan),
        "created_at": plan.created_at,
        "updated_at": plan.updated_at,
    }


class _PlanApi(VerifiedStaffApi):
    def invalid(self, request: HttpRequest, exc: ValidationError) -> JsonResponse:
        message = validation_text(exc)
        self._refused(request, message, code="invalid")
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return JsonResponse({"error": message, "fields": fields}, status=400)


class PlanListApi(_PlanApi):
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(
            jsonable({"version": plans_version(), "plans": [plan_json(p) for p in plan_list()]})
        )

    def post(self, request: HttpRequest) -> JsonResponse:
        data = self.body(request)
        allowed = {"account", *EDITABLE_FIELDS}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ApiInputError(
                f"unknown field {unknown[0]!r}: a plan has {', '.join(sorted(allowed))}"
            )
        if "active" in data and not isinstance(data["active"], bool):
            raise ApiInputError('"active" must be true or false')
        data.setdefault("account", settings.ENGINE_ACCOUNT)
        for name in ("venue", "instrument", "timeframe", "strategy", "stake"):
            if name not in data:
                raise ApiInputError(f'"{name}" is required')
        try:
            plan = plan_create(actor=actor_for(request), **data)
        except ValidationError as exc:
            return self.invalid(request, exc)
        return JsonResponse(jsonable(plan_json(plan)), status=201)


class PlanDetailApi(_PlanApi):
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, plan_id: int) -> JsonResponse:
        plan = self._plan(plan_id)
        return JsonResponse(jsonable(plan_json(plan)))

    def post(self, request: HttpRequest, plan_id: int) -> JsonResponse:
        plan = self._plan(plan_id)
        data = self.body(request)
        if not data:
            raise ApiInputError(f"nothing to change: give any of {', '.join(EDITABLE_FIELDS)}")
        if "active" in data and not isinstance(data["active"], bool):
            raise ApiInputError('"active" must be true or false')
        try:
            plan = plan_update(plan=plan, actor=actor_for(request), **data)
        except ValidationError as exc:
            return self.invalid(request, exc)
        return JsonResponse(jsonable(plan_json(plan)))

    @staticmethod
    def _plan(plan_id: int) -> TradingPlan:
        plan = (
            TradingPlan.objects.select_related("account", "instrument").filter(pk=plan_id).first()
        )
        if plan is None:
            raise ApiInputError(f"no plan with id {plan_id}", 404)
        return plan
