"""Maintenance runs and checklists in the admin: read-only records.

The maintenance calendar itself is django-celery-beat's "Periodic tasks" (editable there).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.ops.models import ChecklistRun, MaintenanceRun, StressReport


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MaintenanceRun)
class MaintenanceRunAdmin(_ReadOnly):
    list_display = ("task", "started_at", "finished_at", "outcome", "actor")
    list_filter = ("task", "outcome")
    date_hierarchy = "started_at"


@admin.register(ChecklistRun)
class ChecklistRunAdmin(_ReadOnly):
    list_display = ("kind", "created_at", "actor")
    list_filter = ("kind",)


@admin.register(StressReport)
class StressReportAdmin(_ReadOnly):
    list_display = ("created_at", "outcome", "actor")
    list_filter = ("outcome",)
    date_hierarchy = "created_at"
