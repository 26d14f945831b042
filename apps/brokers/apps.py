from django.apps import AppConfig


class BrokersConfig(AppConfig):
    name = "apps.brokers"
    verbose_name = "Brokers: connectivity and reconciliation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.brokers import metrics

        metrics.register()
