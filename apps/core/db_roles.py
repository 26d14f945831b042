"""The two database roles: the owner runs migrations, the application role runs the app.

- The **owner** (``DATABASE_OWNER_URL``) owns the tables: only ``manage.py migrate`` and
  ``manage.py db_grant_app_role`` connect as it (manage.py marks them, tradebot/settings).
- The **application role** (``DATABASE_URL``) is what web, the Celery workers, beat, the
  engine and the bots connect as: not a superuser, not the owner nor a member of it, no
  CREATE on the schema (no DDL), SELECT/INSERT/UPDATE/DELETE on the tables it works with,
  and only INSERT and SELECT on the append-only decision log and audit trail (no UPDATE,
  DELETE, TRUNCATE, TRIGGER). Without the owner's rights it cannot TRUNCATE, ALTER TABLE
  ... DISABLE TRIGGER, DROP TRIGGER, SET session_replication_role, nor reverse a migration.

``app_role_grant`` (re)applies the application role's grants and default privileges; it runs
after every ``migrate`` (post_migrate, apps/core/apps.py) and from ``db_grant_app_role``.
``role_problems`` is the start-up check of staging/prod: a process whose database
connection is a superuser, the owner, or has DDL or rewrite rights on the append-only
tables refuses to run (apps/core/apps.py, on the connection's creation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The append-only tables register here at start-up (apps/audit/apps.py): core imports no
# app above it and names none of their tables.
_APPEND_ONLY: list[str] = []
# Read only for the application: which migrations ran is the owner's business. Its
# owner is the owner of the tables (migrate created it).
MIGRATIONS_TABLE = "django_migrations"
READ_ONLY_TABLES = (MIGRATIONS_TABLE,)


def append_only_register(*tables: str) -> None:
    """Tables the application role may only INSERT into and SELECT from."""
    _APPEND_ONLY.extend(t for t in tables if t not in _APPEND_ONLY)


def append_only_tables() -> tuple[str, ...]:
    return tuple(_APPEND_ONLY)


# What the application role may do to every other table and to the sequences.
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APPEND_ONLY_PRIVILEGES = "SELECT, INSERT"
REWRITE_PRIVILEGES = "UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES"
GRANT_COMMAND = "python manage.py db_grant_app_role"


class RoleError(Exception):
    """The application role cannot be set up as asked (the message says what to do)."""


@dataclass(frozen=True)
class RoleFacts:
    """What the database says about the role a connection runs as."""

    role: str
    superuser: bool
    createrole: bool
    bypassrls: bool
    schema_create: bool
    table_owner: str | None  # owner of the tables (migrate's role); None before the first migrate
    member_of_owner: bool
    rewrite_rights: tuple[str, ...]  # append-only tables it may UPDATE/DELETE/TRUNCATE


def role_problems(facts: RoleFacts) -> list[str]:
    """Why an application process must not run with this role (empty: it may)."""
    fix = (
        "connect the application as its own role (DATABASE_URL) and the migrations as the "
        f"owner (DATABASE_OWNER_URL), then run `{GRANT_COMMAND}` as the owner (docs/security.md)"
    )
    found: list[str] = []
    if facts.superuser:
        found.append(f"DATABASE_URL connects as {facts.role!r}, a superuser: {fix}")
    if facts.table_owner is not None and (facts.role == facts.table_owner or facts.member_of_owner):
        found.append(
            f"DATABASE_URL connects as {facts.role!r}, the owner of the tables "
            f"({facts.table_owner!r}) or a member of it: {fix}"
        )
    if facts.createrole or facts.bypassrls:
        found.append(f"DATABASE_URL's role {facts.role!r} has CREATEROLE or BYPASSRLS: {fix}")
    if facts.schema_create:
        found.append(
            f"DATABASE_URL's role {facts.role!r} may CREATE in the schema (DDL): "
            f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {facts.role}; {fix}"
        )
    if facts.rewrite_rights and not facts.superuser:
        found.append(
            f"DATABASE_URL's role {facts.role!r} may rewrite the append-only tables "
            f"({', '.join(facts.rewrite_rights)}): run `{GRANT_COMMAND}` as the owner"
        )
    return found


def role_facts(cursor: Any) -> RoleFacts:
    """The facts of the connection's role (a psycopg cursor)."""
    role, superuser, createrole, bypassrls, schema_create, owner = cursor.execute(
        "SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolbypassrls,"
        " has_schema_privilege(current_user, current_schema(), 'CREATE'),"
        " (SELECT pg_get_userbyid(c.relowner) FROM pg_class c"
        "  WHERE c.oid = to_regclass(%s))"
        " FROM pg_roles r WHERE r.rolname = current_user",
        [MIGRATIONS_TABLE],
    ).fetchone()
    member = False
    if owner is not None:
        member = bool(
            cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", [owner]).fetchone()[0]
        )
    rewrite = tuple(
        table
        for table in append_only_tables()
        if cursor.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(current_user, %s, %s)",
            [table, table, REWRITE_PRIVILEGES.replace(" ", "")],
        ).fetchone()[0]
    )
    return RoleFacts(
        role=role,
        superuser=superuser,
        createrole=createrole,
        bypassrls=bypassrls,
        schema_create=schema_create,
        table_owner=owner,
        member_of_owner=member,
        rewrite_rights=rewrite,
    )


def app_role_grant(*, cursor: Any, app_role: str, password: str | None = None) -> list[str]:
    """Create the application role if missing and (re)apply its grants; returns what ran.

    ``cursor``: a psycopg cursor connected as the owner, inside a transaction. Grants
    cover every table and sequence of the current schema that exists now, and the
    owner's default privileges cover those later migrations create; the append-only
    tables get SELECT and INSERT only.
    """
    from psycopg import sql

    conn = cursor.connection
    owner = cursor.execute("SELECT current_user").fetchone()[0]
    if app_role == owner:
        raise RoleError(
            f"DATABASE_URL and DATABASE_OWNER_URL both use the role {app_role!r}: give the "
            "application its own role (e.g. tradebot_app) in DATABASE_URL"
        )
    role = sql.Identifier(app_role)
    row = cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [app_role]).fetchone()
    statements: list[sql.Composable] = []
    if row is None:
        # CREATEDB: the weekly restore test restores a backup into a scratch database of
        # its own (apps/ops/services/restore.py); it gives no right on this one.
        statements.append(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(role))
    elif row[0]:
        raise RoleError(
            f"the application role {app_role!r} is a superuser: use another role in "
            f"DATABASE_URL (or ALTER ROLE {app_role} NOSUPERUSER as a superuser)"
        )
    if password:
        statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
    database = sql.Identifier(cursor.execute("SELECT current_database()").fetchone()[0])
    schema = sql.Identifier(cursor.execute("SELECT current_schema()").fetchone()[0])
    table_rights = sql.SQL(TABLE_PRIVILEGES)
    statements += [
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, role),
        sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(database, role),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema, role),
        # PostgreSQL < 15 let everyone create in public (a warning, not an error, when the
        # owner of the tables does not own the schema)
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema),
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, role),
        sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(table_rights, schema, role),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, role),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON TABLES TO {}").format(
            schema, table_rights, role
        ),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT USAGE, SELECT ON SEQUENCES TO {}"
        ).format(schema, role),
    ]
    limited = [(t, APPEND_ONLY_PRIVILEGES) for t in append_only_tables()]
    limited += [(t, "SELECT") for t in READ_ONLY_TABLES]
    for table, rights in limited:
        if cursor.execute("SELECT to_regclass(%s)", [table]).fetchone()[0] is None:
            continue
        name = sql.Identifier(table)
        statements += [
            sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(name, role),
            sql.SQL("GRANT {} ON TABLE {} TO {}").format(sql.SQL(rights), name, role),
        ]
    ran = []
    for statement in statements:
        cursor.execute(statement)
        text = statement.as_string(conn)
        ran.append(text.split(" PASSWORD ")[0] + (" PASSWORD ..." if " PASSWORD " in text else ""))
    return ran
