"""The append-only log against the application's own database role (issue 13, item 1).

The suite's own connection is the owner (a superuser: pytest-django creates and migrates
the test database with it). Here a real application role is created on the same server
with the production grant code (apps.core.db_roles.app_role_grant, what `migrate` runs
after every migration), and every bypass that worked through the app's connection is tried
as that role: TRUNCATE, ALTER TABLE ... DISABLE TRIGGER + UPDATE, SET
session_replication_role = replica, DROP TRIGGER, and `manage.py migrate audit 0001`. None
changes a row. The TRUNCATE trigger and ENABLE ALWAYS are checked against the owner too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction

from apps.audit.models import AuditEvent, DecisionLog
from apps.audit.services import audit_record
from apps.core.db_roles import (
    RoleError,
    app_role_grant,
    append_only_tables,
    role_facts,
    role_problems,
)
from tests.audit.test_decision_log_append_only import a_decision
from tests.dbroles import AppRole, app_role_create, app_role_drop, app_role_name
from tests.integration.conftest import ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)


def _owner_conninfo() -> dict:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": db.get("PORT") or 5432,
        "dbname": db["NAME"],
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or None,
    }


@pytest.fixture
def app_role() -> Iterator[AppRole]:
    app_role_drop(app_role_name())  # a fresh one (left by an interrupted run, or another test)
    role = app_role_create()
    yield role
    app_role_drop(role.name)


def run_all(conn: psycopg.Connection, statements: list[str]) -> None:
    for statement in statements:
        conn.execute(statement)


def connect(role: AppRole) -> psycopg.Connection:
    return psycopg.connect(role.url, autocommit=True)


def _snapshot() -> tuple:
    return (
        list(DecisionLog.objects.order_by("pk").values_list("pk", "action", "instrument")),
        list(AuditEvent.objects.order_by("pk").values_list("pk", "action", "actor")),
        _triggers(),
    )


def _triggers() -> list[tuple[str, str, str]]:
    with connection.cursor() as c:
        c.execute(
            "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger"
            " WHERE tgrelid = ANY(%s::regclass[]) AND NOT tgisinternal ORDER BY 1, 2",
            [list(append_only_tables())],
        )
        return c.fetchall()


BYPASSES = {
    "truncate": ["TRUNCATE audit_decisionlog"],
    "truncate audit events, cascade": ["TRUNCATE audit_auditevent CASCADE"],
    "truncate asking the superuser's way": [
        "SET tradebot.allow_truncate = on",
        "TRUNCATE audit_decisionlog",
    ],
    "disable the trigger, then update": [
        "ALTER TABLE audit_decisionlog DISABLE TRIGGER audit_decisionlog_append_only",
        "UPDATE audit_decisionlog SET action = 'sell'",
    ],
    "disable all triggers, then delete": [
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        "DELETE FROM audit_auditevent",
    ],
    "replica mode, then update": [
        "SET session_replication_role = replica",
        "UPDATE audit_decisionlog SET action = 'sell'",
    ],
    "drop the trigger, then delete": [
        "DROP TRIGGER audit_decisionlog_append_only ON audit_decisionlog",
        "DELETE FROM audit_decisionlog",
    ],
    "update": ["UPDATE audit_auditevent SET action = 'forged'"],
    "delete": ["DELETE FROM audit_decisionlog"],
    "drop the table": ["DROP TABLE audit_auditevent CASCADE"],
    "rename the table away": ["ALTER TABLE audit_decisionlog RENAME TO old_log"],
    "become the owner": ["SET ROLE postgres", "TRUNCATE audit_decisionlog"],
    "replace the trigger function": [
        "CREATE OR REPLACE FUNCTION tradebot_reject_modification() RETURNS trigger"
        " AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql",
        "UPDATE audit_decisionlog SET action = 'sell'",
    ],
    "forget the migrations": ["DELETE FROM django_migrations WHERE app = 'audit'"],
    "create a table (DDL)": ["CREATE TABLE public.mine (id int)"],
}


@pytest.mark.parametrize("statements", BYPASSES.values(), ids=BYPASSES.keys())
def test_app_role_when_bypass_tried_then_refused_and_no_row_changes(
    app_role: AppRole, statements: list[str]
) -> None:
    a_decision()
    audit_record(actor="test", action="kill.engage", target="paper")
    before = _snapshot()

    with connect(app_role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_all(conn, statements)

    assert _snapshot() == before
    assert len(before[0]) == 1
    assert len(before[1]) == 1


def test_app_role_when_migrating_audit_back_to_0001_then_refused_and_nothing_changes(
    app_role: AppRole,
) -> None:
    a_decision()
    before = _snapshot()
    # As an app process has it: its own URL, no owner's URL (were it there, migrate would
    # connect as the owner: manage.py)
    env = {**os.environ, "ENVIRONMENT": "test", "DATABASE_URL": app_role.url}
    env["DATABASE_OWNER_URL"] = ""
    env.pop("DJANGO_SETTINGS_MODULE", None)

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "audit", "0001", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0, result.stdout
    assert "must be owner" in result.stderr or "permission denied" in result.stderr, result.stderr
    assert _snapshot() == before
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM django_migrations WHERE app = 'audit'")
        assert c.fetchone()[0] >= 4


def test_app_role_when_working_then_inserts_and_reads_the_logs_and_writes_other_tables(
    app_role: AppRole,
) -> None:
    with connect(app_role) as conn:
        conn.execute(
            "INSERT INTO audit_auditevent (created_at, actor, action, target, data)"
            " VALUES (now(), 'engine', 'mode.change', '', '{}')"
        )
        rows = conn.execute("SELECT actor FROM audit_auditevent").fetchall()
        writable = conn.execute(
            "SELECT has_table_privilege('trading_account', 'INSERT,UPDATE,DELETE'),"
            " has_table_privilege('django_migrations', 'INSERT,UPDATE,DELETE')"
        ).fetchone()
        facts = role_facts(conn.cursor())

    assert set(append_only_tables()) == {"audit_decisionlog", "audit_auditevent"}  # registered
    assert rows == [("engine",)]
    assert writable == (True, False)
    assert role_problems(facts) == []  # the start-up check lets it run


def test_owner_when_truncating_without_asking_then_trigger_refuses() -> None:
    a_decision()
    audit_record(actor="test", action="x")

    with psycopg.connect(**_owner_conninfo(), autocommit=True) as conn:
        for table in append_only_tables():
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only: TRUNCATE"):
                conn.execute(f"TRUNCATE {table}")

    assert DecisionLog.objects.count() == 1
    assert AuditEvent.objects.count() == 1


def test_owner_when_replica_mode_then_row_triggers_still_fire() -> None:
    decision = a_decision()

    with (
        psycopg.connect(**_owner_conninfo(), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        run_all(
            conn,
            [
                "SET session_replication_role = replica",
                f"UPDATE audit_decisionlog SET action = 'sell' WHERE id = {int(decision.pk)}",  # noqa: S608
            ],
        )

    assert DecisionLog.objects.get(pk=decision.pk).action == "buy"
    assert {enabled for _table, _name, enabled in _triggers()} == {"A"}  # ENABLE ALWAYS


def test_owner_role_checked_when_app_connects_as_superuser_then_problems_name_the_fix() -> None:
    with psycopg.connect(**_owner_conninfo(), autocommit=True) as conn:
        problems = role_problems(role_facts(conn.cursor()))

    assert any("a superuser" in p for p in problems)
    assert all("DATABASE_OWNER_URL" in p or "db_grant_app_role" in p for p in problems)


def test_grant_when_app_role_is_the_owner_then_refused() -> None:
    with connection.cursor() as c:
        c.execute("SELECT current_user")
        (me,) = c.fetchone()

    with transaction.atomic(), pytest.raises(RoleError, match="both use the role"):
        app_role_grant(cursor=connection.connection.cursor(), app_role=me)


def test_migrate_when_run_as_the_owner_then_creates_and_grants_the_application_role() -> None:
    name = app_role_name()
    app_role_drop(name)
    app_url = database_url(
        {**settings.DATABASES["default"], "USER": name, "PASSWORD": "pw-42-Strong"}
    )
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": app_url,
        "DATABASE_OWNER_URL": database_url(settings.DATABASES["default"]),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)

    try:
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        with connection.cursor() as c:
            c.execute(
                "SELECT has_table_privilege(%s, 'audit_decisionlog', 'INSERT'),"
                " has_table_privilege(%s, 'audit_decisionlog', 'UPDATE'),"
                " has_table_privilege(%s, 'trading_account', 'UPDATE')",
                [name, name, name],
            )
            rights = c.fetchone()
    finally:
        app_role_drop(name)

    assert result.returncode == 0, result.stderr
    assert f"Granted the application role '{name}'" in result.stdout
    assert rights == (True, False, True)
