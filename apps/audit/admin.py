"""The decision log and audit trail in the admin: browsable, filterable, never editable."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.models import AuditEvent, DecisionLog


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DecisionLog)
class DecisionLogAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "bar_ts",
        "instrument",
        "strategy",
        "signal",
        "mode",
        "check_result",
        "action",
        "order_list",
    )
    list_filter = (
        "action",
        "check_result",
        "mode",
        "instrument",
        "strategy",
        "created_at",
        "bar_ts",
    )
    search_fields = ("instrument", "order_ids", "failed_checks")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in DecisionLog._meta.fields]

    @admin.display(description="orders")
    def order_list(self, obj: DecisionLog) -> str:
        return ", ".join(obj.order_ids)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor", "action", "target")
    list_filter = ("action", "created_at")
    search_fields = ("actor", "action", "target")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
