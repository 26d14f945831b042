from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "apps.ml"
    label = "ml"
    verbose_name = "AI signals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: apps.py is imported while the app registry loads.
        from prometheus_client import REGISTRY

        from apps.ml.domain.strategy import ml_strategy_from_file
        from apps.ml.metrics import MlCollector
        from apps.strategies.domain.registry import register

        # --strategy ml --param model=models/<file>.joblib --param threshold=0.5
        register("ml", ml_strategy_from_file)

        if not getattr(REGISTRY, "_tradebot_ml_collector", False):
            REGISTRY.register(MlCollector())
            REGISTRY._tradebot_ml_collector = True  # type: ignore[attr-defined]
