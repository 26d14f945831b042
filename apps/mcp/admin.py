from __future__ import annotations

from django.contrib import admin

from apps.audit.admin_audit import AuditedAdminMixin
from apps.mcp.models import McpAgent, McpTicket


@admin.register(McpAgent)
class McpAgentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Agents are created with `manage.py mcp_agent create` (it prints the token once);
    here they are inspected, their limits tightened, and revoked (set revoked_at)."""

    list_display = (
        "name",
        "token_prefix",
        "account",
        "paper_only",
        "max_order_notional",
        "max_orders_per_minute",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("paper_only", "revoked_at")
    readonly_fields = ("token_hash", "token_prefix", "created_at", "created_by", "last_used_at")
    audit_exclude = frozenset({"token_hash"})
    actions = ("revoke",)

    def has_add_permission(self, request: object) -> bool:
        return False

    @admin.action(description="Revoke the selected agents' tokens")
    def revoke(self, request: object, queryset: object) -> None:
        from apps.mcp.services import mcp_agent_revoke

        for agent in queryset:  # type: ignore[attr-defined]
            mcp_agent_revoke(name=agent.name, actor=f"admin:{request.user}")  # type: ignore[attr-defined]


@admin.register(McpTicket)
class McpTicketAdmin(admin.ModelAdmin):
    list_display = (
        "agent",
        "instrument",
        "side",
        "quantity",
        "created_at",
        "expires_at",
        "confirmed_at",
        "verdict",
    )
    readonly_fields = [f.name for f in McpTicket._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
