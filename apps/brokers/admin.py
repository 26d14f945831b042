"""Admin: reconciliation history and discrepancies, read-only (resolution is a panel action)."""

from django.contrib import admin

from apps.brokers.models import BrokerSession, Discrepancy, ReconciliationRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):  # noqa: ANN001, ANN201, ARG002
        return False

    def has_change_permission(self, request, obj=None):  # noqa: ANN001, ANN201, ARG002
        return False

    def has_delete_permission(self, request, obj=None):  # noqa: ANN001, ANN201, ARG002
        return False


@admin.register(BrokerSession)
class BrokerSessionAdmin(ReadOnlyAdmin):
    list_display = ("account", "state", "last_heartbeat_at", "disconnected_since", "last_error")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "account",
        "trigger",
        "actor",
        "started_at",
        "outcome",
        "orders_checked",
        "positions_checked",
        "fills_applied",
        "orders_settled",
        "discrepancies_found",
    )
    list_filter = ("outcome", "trigger", "account")


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "account",
        "kind",
        "instrument",
        "ours",
        "broker",
        "status",
        "first_seen_at",
        "last_seen_at",
        "resolved_by",
    )
    list_filter = ("status", "kind", "account")
    search_fields = ("key", "detail")
