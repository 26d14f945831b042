from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "apps.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.ops import celery_metrics
        from apps.ops.metrics import (
            AppProcessCollector,
            CeleryCollector,
            InfluxWriterCollector,
            MaintenanceCollector,
        )

        # Every process: stamp published tasks; in workers, time them and report CPU/RSS.
        celery_metrics.connect()
        if not getattr(REGISTRY, "_tradebot_maintenance_collector", False):
            REGISTRY.register(MaintenanceCollector())
            REGISTRY.register(CeleryCollector())
            REGISTRY.register(AppProcessCollector())
            REGISTRY.register(InfluxWriterCollector())
            REGISTRY._tradebot_maintenance_collector = True  # type: ignore[attr-defined]
