"""A real application database role for tests (apps/core/db_roles.py).

The suite itself connects as the owner (the server's superuser: pytest-django creates and
migrates the test database with it). Processes started as staging or prod, and the
append-only tests, connect as an application role created here with the production grant
code. One role per test database (roles are per server); `app_roles_drop` (a session
fixture in tests/conftest.py) drops them when the session ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection, transaction

from apps.core.db_roles import app_role_grant

_CREATED: set[str] = set()


@dataclass(frozen=True)
class AppRole:
    name: str
    password: str
    url: str


def _url(db: dict[str, Any], user: str, password: str) -> str:
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{host}{port}/{quote(db['NAME'], safe='')}"


def app_role_name() -> str:
    digest = hashlib.sha1(settings.DATABASES["default"]["NAME"].encode()).hexdigest()[:10]  # noqa: S324
    return f"tb_app_{digest}"


def app_role_create() -> AppRole:
    """Create (or refresh) the test database's application role and commit its grants.

    Needs committed data to be useful to another connection: call it from a
    transactional test (``transactional_db``)."""
    name = app_role_name()
    password = secrets.token_urlsafe(24)  # the test server trusts loopback: any strong one
    with transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            app_role_grant(cursor=cursor, app_role=name, password=password)
    _CREATED.add(name)
    return AppRole(
        name=name, password=password, url=_url(settings.DATABASES["default"], name, password)
    )


def app_role_drop(name: str) -> None:
    """Drop the role and what it holds in the test database (still there)."""
    with connection.cursor() as c:
        c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        if not c.fetchone():
            return
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name]
        )
        c.execute(f'DROP OWNED BY "{name}"; DROP ROLE "{name}"')
    _CREATED.discard(name)


def app_roles_drop_at_exit(conninfo: dict[str, Any]) -> None:
    """After the test database is gone: drop the roles created in this session."""
    import psycopg

    if not _CREATED:
        return
    with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as conn:
        for name in sorted(_CREATED):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name]
            )
            # fails when it still holds rights in a kept database (--reuse-db): reused next run
            with contextlib.suppress(psycopg.Error):
                conn.execute(f'DROP ROLE IF EXISTS "{name}"')
    _CREATED.clear()
