from django.contrib import admin

from apps.trading.models import (
    EquitySnapshot,
    Fill,
    Order,
    PaperAccount,
    PaperClock,
    PaperFill,
    PaperOrder,
    PaperPosition,
    Position,
)


class ReadOnlyMixin:
    """Orders, fills and positions change through services only (state machine, exactly-once fills)."""

    def has_add_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        return False

    def has_change_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        return False

    def has_delete_permission(self, request, obj=None):  # noqa: ANN001, ANN201
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "client_order_id",
        "account",
        "instrument",
        "side",
        "order_type",
        "quantity",
        "status",
        "filled_quantity",
        "avg_fill_price",
        "fees",
        "fill_rate",
        "slippage_bps",
    )
    list_filter = ("status", "side", "account", "instrument")
    search_fields = ("client_order_id", "broker_order_id")
    date_hierarchy = "created_at"


@admin.register(Fill)
class FillAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "ts",
        "trade_id",
        "account",
        "order",
        "side",
        "quantity",
        "price",
        "fee",
        "realized_pnl",
    )
    list_filter = ("account", "side")
    search_fields = ("trade_id", "order__client_order_id")


@admin.register(Position)
class PositionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "account",
        "instrument",
        "quantity",
        "avg_price",
        "last_price",
        "realized_pnl",
        "fees",
    )


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("ts", "account", "equity", "cash", "realized_pnl", "unrealized_pnl", "drawdown")
    list_filter = ("account",)
    date_hierarchy = "ts"


# The paper broker's own book: the broker's view, read-only (only the paper venue writes it).


@admin.register(PaperAccount)
class PaperAccountAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("account", "currency", "cash", "created_at")


@admin.register(PaperOrder)
class PaperOrderAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "broker_order_id",
        "client_order_id",
        "account",
        "instrument",
        "side",
        "order_type",
        "quantity",
        "limit_price",
        "status",
        "filled_quantity",
        "avg_fill_price",
        "eligible_after",
    )
    list_filter = ("status", "side", "account", "instrument")
    search_fields = ("client_order_id", "broker_order_id")
    date_hierarchy = "created_at"


@admin.register(PaperFill)
class PaperFillAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("ts", "trade_id", "account", "order", "side", "quantity", "price", "fee")
    list_filter = ("account", "side")
    search_fields = ("trade_id", "order__client_order_id")


@admin.register(PaperPosition)
class PaperPositionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("account", "instrument", "quantity", "avg_price", "updated_at")
    list_filter = ("account",)


@admin.register(PaperClock)
class PaperClockAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("account", "instrument", "last_bar_ts")
    list_filter = ("account",)
