from django.contrib import admin

from apps.ml.models import CalibrationSnapshot, ModelVersion, Prediction


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only: promotion goes through model_promote (comparison + audit)."""

    list_display = (
        "version",
        "status",
        "algorithm",
        "instrument",
        "created_at",
        "promoted_by",
        "promoted_at",
    )
    list_filter = ("status", "algorithm")

    def has_add_permission(self, request):  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None):  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None):  # noqa: ANN001
        return False


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = (
        "bar_ts",
        "instrument",
        "model_version",
        "probability",
        "outcome",
        "decision_id",
    )
    list_filter = ("instrument", "outcome")

    def has_add_permission(self, request):  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None):  # noqa: ANN001
        return False


@admin.register(CalibrationSnapshot)
class CalibrationSnapshotAdmin(admin.ModelAdmin):
    list_display = ("created_at", "model_version", "n", "ece", "brier", "psi_max", "level")

    def has_add_permission(self, request):  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None):  # noqa: ANN001
        return False
