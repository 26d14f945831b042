from django.apps import AppConfig


class PanelConfig(AppConfig):
    name = "apps.panel"
    label = "panel"
    verbose_name = "Control panel"

    def ready(self) -> None:
        from apps.panel import signals  # noqa: F401 - connects the logout receiver
