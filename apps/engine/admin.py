"""Trading plans in the admin: the model's own validation on the form, saves through the
audited services (actor ``user:<admin>``). No deleting: deactivate a plan instead."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.engine.forms import PLAN_FORM_FIELDS, TradingPlanForm
from apps.engine.models import TradingPlan
from apps.engine.services import EDITABLE_FIELDS, plan_create, plan_set_active, plan_update


@admin.register(TradingPlan)
class TradingPlanAdmin(admin.ModelAdmin):
    form = TradingPlanForm
    fields = (*PLAN_FORM_FIELDS, "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")
    list_display = (
        "id",
        "account",
        "venue",
        "instrument",
        "timeframe",
        "strategy",
        "params",
        "stake",
        "active",
        "updated_at",
    )
    list_filter = ("active", "venue", "timeframe", "strategy", "account")
    search_fields = ("instrument__symbol", "strategy", "account__name")
    list_select_related = ("account", "instrument")
    actions = ("activate", "deactivate")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: TradingPlan, form: Any, change: bool) -> None:
        actor = f"user:{request.user.get_username()}"
        if change:
            current = TradingPlan.objects.get(pk=obj.pk)
            changed = {
                name: getattr(obj, name) for name in form.changed_data if name in EDITABLE_FIELDS
            }
            saved = plan_update(plan=current, actor=actor, **changed)
        else:
            saved = plan_create(
                account=obj.account,
                venue=obj.venue,
                instrument=obj.instrument,
                timeframe=obj.timeframe,
                strategy=obj.strategy,
                params=obj.params,
                stake=obj.stake,
                active=obj.active,
                actor=actor,
            )
        obj.pk = saved.pk
        obj.created_at = saved.created_at
        obj.updated_at = saved.updated_at

    @admin.action(description="Activate the selected plans (audited)")
    def activate(self, request: HttpRequest, queryset: Any) -> None:
        self._set_active(request, queryset, active=True)

    @admin.action(description="Deactivate the selected plans (audited)")
    def deactivate(self, request: HttpRequest, queryset: Any) -> None:
        self._set_active(request, queryset, active=False)

    def _set_active(self, request: HttpRequest, queryset: Any, *, active: bool) -> None:
        actor = f"user:{request.user.get_username()}"
        for plan in queryset:
            try:
                plan_set_active(plan=plan, active=active, actor=actor)
            except ValidationError as exc:
                messages.error(request, f"plan {plan.pk} ({plan}): {'; '.join(exc.messages)}")
