from django.contrib import admin

from apps.marketdata.models import FeedStatus, Instrument


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ("symbol", "base", "quote", "asset_class", "tick_size", "lot_size", "active")
    list_filter = ("asset_class", "active")
    search_fields = ("symbol",)


@admin.register(FeedStatus)
class FeedStatusAdmin(admin.ModelAdmin):
    list_display = ("feed", "last_update", "last_bar_ts", "bars_accepted", "bars_rejected")
    readonly_fields = (
        "feed",
        "last_update",
        "last_bar_ts",
        "bars_accepted",
        "bars_rejected",
        "rejections",
    )
