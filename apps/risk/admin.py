from django.contrib import admin

from apps.risk.models import ModeChange, RiskLimit, SystemState


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
    list_display = ("account", "max_order_notional", "max_position_notional", "updated_at")
