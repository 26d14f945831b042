from django.apps import AppConfig


class PanelConfig(AppConfig):
    name = "apps.panel"
    label = "panel"
    verbose_name = "Control panel"

    def ready(self) -> None:
        # Receivers: the logout closes the session's websockets; logins are audited.
        from apps.panel import security_log, signals  # noqa: F401
