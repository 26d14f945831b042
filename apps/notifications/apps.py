from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.notifications.metrics import WatchdogCollector

        if not getattr(REGISTRY, "_tradebot_watchdog_collector", False):
            REGISTRY.register(WatchdogCollector())
            REGISTRY._tradebot_watchdog_collector = True  # type: ignore[attr-defined]
