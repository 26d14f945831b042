from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit and decision log"

    def ready(self) -> None:
        from apps.audit.models import AuditEvent, DecisionLog
        from apps.core.db_roles import append_only_register

        # The application role may only INSERT into and SELECT from them (docs/security.md).
        append_only_register(DecisionLog._meta.db_table, AuditEvent._meta.db_table)
