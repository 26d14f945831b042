"""Grafana behind the panel's login (issue 14): nginx asks the app before every /grafana/ request.

The shipped nginx config in a real nginx, the app as production starts it (entrypoint's
``web``) on the test database, and a loopback stand-in for Grafana that records the
auth-proxy headers it receives (Grafana itself is not installable here).
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import otp_login
from tests.loopback import recording_upstream
from tests.ops.test_forwarded_ip import https_port, nginx_in_front_of, web  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def grafana() -> Iterator[tuple[str, list[object]]]:
    """Records the path and the X-WEBAUTH-* headers of every request that reaches 'Grafana'."""

    def record(req: BaseHTTPRequestHandler) -> dict[str, str]:
        return {
            "path": req.path,
            "user": req.headers.get("X-WEBAUTH-USER", ""),
            "role": req.headers.get("X-WEBAUTH-ROLE", ""),
        }

    with recording_upstream(record, body=b"grafana") as upstream:
        yield upstream


def session_cookie(username: str, *, verified: bool, superuser: bool = False) -> str:
    """A real session of ``username`` (password + TOTP when ``verified``) in the app's store."""
    model = get_user_model()
    make = model.objects.create_superuser if superuser else model.objects.create_user
    user = make(username=username, password="x" * 24, is_staff=True)
    client = Client()
    otp_login(client, user, verified=verified)
    return client.cookies["sessionid"].value


def test_grafana_when_verified_staff_then_proxied_with_the_user_and_role_set_by_nginx(
    web: str,  # noqa: F811
    https_port: int,  # noqa: F811
    grafana: tuple[str, list[object]],
    tmp_path: Path,
) -> None:
    upstream, seen = grafana
    viewer = session_cookie("operator", verified=True)
    admin = session_cookie("boss", verified=True, superuser=True)
    forged = {"X-WEBAUTH-USER": "boss", "X-WEBAUTH-ROLE": "Admin"}

    with (
        nginx_in_front_of(web, https_port, tmp_path, grafana=upstream) as base,
        httpx.Client(base_url=base, verify=False) as http,  # noqa: S501 - the test's cert
    ):
        as_viewer = http.get("/grafana/d/trading", cookies={"sessionid": viewer}, headers=forged)
        as_admin = http.get("/grafana/api/health", cookies={"sessionid": admin})

    assert (as_viewer.status_code, as_viewer.text) == (200, "grafana")
    assert as_admin.status_code == 200
    assert seen == [
        {"path": "/grafana/d/trading", "user": "operator", "role": "Viewer"},  # not the forged
        {"path": "/grafana/api/health", "user": "boss", "role": "Admin"},
    ]


def test_grafana_when_anonymous_or_password_only_then_sent_to_the_login_and_never_proxied(
    web: str,  # noqa: F811
    https_port: int,  # noqa: F811
    grafana: tuple[str, list[object]],
    tmp_path: Path,
) -> None:
    upstream, seen = grafana
    password_only = session_cookie("operator", verified=False)

    with (
        nginx_in_front_of(web, https_port, tmp_path, grafana=upstream) as base,
        httpx.Client(base_url=base, verify=False) as http,  # noqa: S501 - the test's cert
    ):
        anonymous = http.get("/grafana/d/trading", headers={"X-WEBAUTH-USER": "boss"})
        half = http.get("/grafana/", cookies={"sessionid": password_only})
        internal = http.get("/_auth/grafana", cookies={"sessionid": password_only})

    assert anonymous.status_code == 302
    assert anonymous.headers["location"].endswith("/account/login/?next=/grafana/d/trading")
    assert half.status_code == 302
    assert internal.status_code == 404  # the check itself is internal to nginx
    assert seen == []
