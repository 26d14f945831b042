from __future__ import annotations

import logging
import sys
from typing import Any

from django.apps import AppConfig

log = logging.getLogger("tradebot.db")
_ROLE_CHECKED: set[str] = set()  # DATABASE_URLs whose role passed the check in this process


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        from django.apps import apps
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        # After every migrate run as the owner: the application role's grants again (new
        # tables included). post_migrate is sent once per app with models, after all the
        # migrations ran: listen to one of them (audit: the tables this is about).
        post_migrate.connect(
            _grant_after_migrate,
            sender=apps.get_app_config("audit"),
            dispatch_uid="core.app_role_grant",
        )
        connection_created.connect(_refuse_privileged_role, dispatch_uid="core.role_check")


def app_role_from_settings() -> tuple[str, str | None]:
    """The application role's name and password, from DATABASE_URL."""
    import environ
    from django.conf import settings

    config = environ.Env.db_url_config(settings.DATABASE_APP_URL)
    return str(config.get("USER") or ""), (str(config.get("PASSWORD") or "") or None)


def grant_app_role(*, using: str = "default") -> list[str]:
    """(Re)apply the application role's grants on the owner connection ``using``."""
    from django.db import connections, transaction

    from apps.core.db_roles import RoleError, app_role_grant

    role, password = app_role_from_settings()
    if not role:
        raise RoleError("DATABASE_URL names no user: put the application role in it")
    connection = connections[using]
    with transaction.atomic(using=using):
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            return app_role_grant(cursor=cursor, app_role=role, password=password)


def _grant_after_migrate(sender: Any, using: str = "default", verbosity: int = 1, **_: Any) -> None:
    from django.conf import settings

    if not settings.DATABASE_AS_OWNER:
        return  # one role for everything (no DATABASE_OWNER_URL): nothing to grant
    ran = grant_app_role(using=using)
    role, _password = app_role_from_settings()
    log.info("application role %s: %d grant statements applied", role, len(ran))
    if verbosity >= 1:
        sys.stdout.write(
            f"  Granted the application role {role!r} its privileges ({len(ran)} statements)\n"
        )


def _refuse_privileged_role(sender: Any, connection: Any, **_: Any) -> None:
    """staging/prod: a superuser, owner or rewrite-capable role is refused at connect time."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from apps.core.db_roles import role_facts, role_problems

    if connection.alias != "default" or not getattr(settings, "DATABASE_ROLE_CHECK", False):
        return
    if settings.DATABASE_APP_URL in _ROLE_CHECKED:
        return  # same role as before: checked once per process
    raw = connection.connection
    with raw.cursor() as cursor:
        problems = role_problems(role_facts(cursor))
    if not problems:
        _ROLE_CHECKED.add(settings.DATABASE_APP_URL)
    else:
        # Drop the connection before refusing: the next use connects (and is refused) again.
        connection.connection = None
        raw.close()
        message = "refusing to run: " + "; ".join(problems)
        log.critical(message)
        raise ImproperlyConfigured(message)
