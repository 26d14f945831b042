"""staging/prod refuse to run the application as a superuser or as the tables' owner
(issue 13, item 1): the web process as it starts (tradebot.asgi), on the real server."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.conftest import ROOT, database_url
from tests.integration.processes import process_env

pytestmark = pytest.mark.django_db(transaction=True)


def start_web(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import the ASGI application as uvicorn does, then use the database once."""
    code = (
        "import tradebot.asgi\n"
        "from django.db import connection\n"
        "connection.ensure_connection()\n"
        "print('started')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_staging_web_when_database_url_is_the_superuser_owner_then_refuses(tmp_path: Path) -> None:
    env = process_env(tmp_path, environment="staging")
    db = dict(settings.DATABASES["default"])  # the suite's own role: superuser and owner
    db["USER"] = db.get("USER") or "postgres"
    db["PASSWORD"] = secrets.token_urlsafe(24)  # the test server trusts loopback
    env["DATABASE_URL"] = database_url(db)

    result = start_web(env)

    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "refusing to run: DATABASE_URL connects as" in result.stderr
    assert "a superuser" in result.stderr
    assert "the owner of the tables" in result.stderr


def test_staging_web_when_database_url_is_the_application_role_then_starts(tmp_path: Path) -> None:
    env = process_env(tmp_path, environment="staging")  # the application role (tests/dbroles.py)

    result = start_web(env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
