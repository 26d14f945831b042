"""Notifications, deliveries, channel states and alerts in the admin: read-only records."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.notifications.models import (
    Alert,
    ChannelState,
    Delivery,
    Notification,
    WatchdogHeartbeat,
)


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = ("channel", "status", "attempts", "last_error", "sent_at", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(_ReadOnly):
    list_display = ("created_at", "severity", "code", "title", "occurrences")
    list_filter = ("severity", "code")
    search_fields = ("title", "body", "dedup_key")
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnly):
    list_display = ("created_at", "channel", "status", "attempts", "last_error")
    list_filter = ("channel", "status")


@admin.register(ChannelState)
class ChannelStateAdmin(_ReadOnly):
    list_display = ("channel", "disabled_until", "disabled_at", "error")


@admin.register(WatchdogHeartbeat)
class WatchdogHeartbeatAdmin(_ReadOnly):
    list_display = ("last_seen_at", "receiver", "beats")


@admin.register(Alert)
class AlertAdmin(_ReadOnly):
    """Read-only: raised by the rules, resolved through ``alert_resolve``."""

    list_display = ("created_at", "severity", "code", "message", "resolved_at", "resolved_by")
    list_filter = ("severity", "resolved_at")
    search_fields = ("code", "message")
