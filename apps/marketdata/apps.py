from django.apps import AppConfig


class MarketdataConfig(AppConfig):
    name = "apps.marketdata"
    label = "marketdata"
    verbose_name = "Market data"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.marketdata.metrics import FeedFreshnessCollector

        if not getattr(REGISTRY, "_tradebot_feed_collector", False):
            REGISTRY.register(FeedFreshnessCollector())
            REGISTRY._tradebot_feed_collector = True  # type: ignore[attr-defined]
