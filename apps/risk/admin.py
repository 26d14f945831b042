from django.contrib import admin

from apps.core.exceptions import ApplicationError
from apps.risk.models import HypotheticalTrade, Incident, ModeChange, RiskLimit, SystemState
from apps.risk.services.limits import LIMIT_SPECS, risk_limit_set


@admin.register(SystemState)
class SystemStateAdmin(admin.ModelAdmin):
    """Read-only here: the mode changes through the mode service (recorded and pushed)."""

    list_display = ("mode", "changed_at", "changed_by", "source", "reason")

    def has_add_permission(self, request):  # noqa: ANN001, ANN201
        return False

    def has_change_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        return False

    def has_delete_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        return False


@admin.register(ModeChange)
class ModeChangeAdmin(SystemStateAdmin):
    list_display = ("created_at", "from_mode", "to_mode", "actor", "source", "reason")


@admin.register(RiskLimit)
class RiskLimitAdmin(admin.ModelAdmin):
    """Edits go through ``risk_limit_set``: range-checked against the ceilings and audited."""

    list_display = (
        "account",
        "max_order_notional",
        "max_position_notional",
        "max_gross_exposure",
        "max_open_positions",
        "price_collar_pct",
        "max_orders_per_minute",
        "duplicate_window_seconds",
        "updated_at",
    )

    def has_delete_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        # A deleted row would fall back to the settings ceilings (max order 5,000 -> 100,000):
        # lower the limits instead (the panel's Risk page or this form, audited).
        return False

    def save_model(self, request, obj, form, change):  # noqa: ANN001, ANN201
        values = {
            name: "" if getattr(obj, name) is None else str(getattr(obj, name))
            for name in LIMIT_SPECS
        }
        try:
            risk_limit_set(
                account_id=obj.account_id, values=values, actor=f"user:{request.user.username}"
            )
        except ApplicationError as exc:
            from django.contrib import messages

            messages.error(request, exc.message)


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Read-only: incidents are written and closed through the services (panel), audited."""

    list_display = ("id", "status", "title", "opened_at", "opened_by", "closed_at", "closed_by")
    list_filter = ("status",)
    search_fields = ("title", "what_happened", "cause", "action_taken")

    def has_add_permission(self, request):  # noqa: ANN001, ANN201
        return False

    def has_change_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        return False

    def has_delete_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        return False


@admin.register(HypotheticalTrade)
class HypotheticalTradeAdmin(IncidentAdmin):
    list_display = (
        "decision_bar_ts",
        "account",
        "instrument",
        "side",
        "quantity",
        "decision_price",
        "fill_price",
        "fill_ts",
    )
    list_filter = ("side",)
    search_fields = ()
