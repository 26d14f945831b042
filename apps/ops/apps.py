from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.ops.metrics import MaintenanceCollector

        if not getattr(REGISTRY, "_tradebot_maintenance_collector", False):
            REGISTRY.register(MaintenanceCollector())
            REGISTRY._tradebot_maintenance_collector = True  # type: ignore[attr-defined]
