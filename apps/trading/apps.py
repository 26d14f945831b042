from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "apps.trading"
    label = "trading"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.trading.metrics import TradingCollector
        from apps.trading.risk_metrics import RiskCollector

        if not getattr(REGISTRY, "_tradebot_trading_collector", False):
            REGISTRY.register(TradingCollector())
            REGISTRY._tradebot_trading_collector = True  # type: ignore[attr-defined]
        # The risk gauges read the books (positions, equity monitors), so they live here.
        if not getattr(REGISTRY, "_tradebot_risk_collector", False):
            REGISTRY.register(RiskCollector())
            REGISTRY._tradebot_risk_collector = True  # type: ignore[attr-defined]
