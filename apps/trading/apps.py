from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "apps.trading"
    label = "trading"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.trading.metrics import TradingCollector

        if not getattr(REGISTRY, "_tradebot_trading_collector", False):
            REGISTRY.register(TradingCollector())
            REGISTRY._tradebot_trading_collector = True  # type: ignore[attr-defined]
