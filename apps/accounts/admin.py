from django.contrib import admin

from apps.accounts.models import Account


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
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
