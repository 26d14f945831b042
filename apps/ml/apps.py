from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "apps.ml"
    label = "ml"
    verbose_name = "AI signals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.ml.metrics import MlCollector

        if not getattr(REGISTRY, "_tradebot_ml_collector", False):
            REGISTRY.register(MlCollector())
            REGISTRY._tradebot_ml_collector = True  # type: ignore[attr-defined]
