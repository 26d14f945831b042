from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "apps.risk"
    label = "risk"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.risk.metrics import RiskCollector

        if not getattr(REGISTRY, "_tradebot_risk_collector", False):
            REGISTRY.register(RiskCollector())
            REGISTRY._tradebot_risk_collector = True  # type: ignore[attr-defined]
