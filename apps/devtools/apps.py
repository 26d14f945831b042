from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Dev-only commands (seed data); installed in dev and test settings only."""

    name = "apps.devtools"
    label = "devtools"
