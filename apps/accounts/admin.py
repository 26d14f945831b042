from django.contrib import admin

from apps.accounts.models import Account
from apps.audit.admin_audit import AuditedAdminMixin


@admin.register(Account)
class AccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Every change (a broker switch from paper to a live venue above all) is audited with
    its before and after values."""

    list_display = (
        "name",
        "broker",
        "currency",
        "cash",
        "realized_pnl",
        "fees_paid",
        "peak_equity",
    )
    readonly_fields = ("cash", "realized_pnl", "fees_paid", "peak_equity", "created_at")
