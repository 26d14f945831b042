"""Nobody chooses the address the login lockout records (issue 13, item 2).

The web process as production starts it (docker/entrypoint.sh's `web`: uvicorn with its
proxy-header settings) on the test database, behind the real nginx with the shipped config.
A failed login sent with a forged X-Forwarded-For is recorded by django-axes under the
client's real address: nginx sets the header to the address it saw (it does not append to
the client's), and uvicorn believes forwarded headers only from the proxy's address, so a
client that reaches uvicorn directly cannot forge it either.

The client connects from 127.0.0.2 (the proxy, nginx, is on 127.0.0.1), so "the real
address" and "the proxy's address" differ.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model

from tests.integration.conftest import database_url, redis_url
from tests.loopback import free_port, recording_upstream, server
from tests.ops.test_deployment_files import need, render_nginx

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CLIENT_IP = "127.0.0.2"
FORGED_IP = "203.0.113.66"
LOGIN = "/account/login/"


@pytest.fixture
def https_port() -> int:
    return free_port()


@pytest.fixture
def web(https_port: int) -> Iterator[str]:
    """`docker/entrypoint.sh web` on loopback: the shipped uvicorn command line."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": redis_url(),
        "PYTHONUNBUFFERED": "1",
        # compose sets nginx's fixed address; here nginx is on 127.0.0.1
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        # nginx on a port other than 443: the CSRF check's Referer carries it
        "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://127.0.0.1:{https_port}",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = [
        "sh",
        str(ROOT / "docker" / "entrypoint.sh"),
        "web",
        # the last --host/--port win: loopback and a free port instead of 0.0.0.0:8000
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
    ]
    with (
        tempfile.TemporaryDirectory(prefix="tradebot-web-") as tmp,
        server(
            args,
            ready_url=f"http://127.0.0.1:{port}/health",
            log=Path(tmp) / "web.log",
            env=env,
            cwd=ROOT,
        ),
    ):
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def nginx_in_front_of(
    upstream: str,
    https_port: int,
    tmp_path: Path,
    http_port: int | None = None,
    grafana: str = "",
) -> Iterator[str]:
    """The shipped nginx config on loopback (tests/ops/test_deployment_files.render_nginx)."""
    binary = need("nginx", "nginx")
    conf = render_nginx(tmp_path, upstream, http_port or free_port(), https_port, grafana)
    proc = subprocess.Popen(  # noqa: S603
        [binary, "-c", str(conf), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start: " + (tmp_path / "error.log").read_text())
                time.sleep(0.1)
        yield f"https://127.0.0.1:{https_port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def nginx(web: str, https_port: int, tmp_path: Path) -> Iterator[str]:
    with nginx_in_front_of(web, https_port, tmp_path) as base:
        yield base


@pytest.fixture
def echo_upstream() -> Iterator[tuple[str, list[object]]]:
    """An HTTP upstream that records the X-Forwarded-For it receives."""
    with recording_upstream(lambda req: req.headers.get("X-Forwarded-For", "")) as upstream:
        yield upstream


def test_nginx_when_client_sends_forwarded_for_then_it_is_replaced_by_the_client_address(
    echo_upstream: tuple[str, list[str]], tmp_path: Path
) -> None:
    upstream, seen = echo_upstream
    http_port = free_port()
    with nginx_in_front_of(upstream, free_port(), tmp_path, http_port) as base:
        transport = httpx.HTTPTransport(local_address=CLIENT_IP, verify=False)  # noqa: S501
        with httpx.Client(transport=transport) as http:
            forged = {"X-Forwarded-For": FORGED_IP}
            responses = [
                http.get(f"{base}/anything", headers=forged),  # https: the app
                http.get(f"http://127.0.0.1:{http_port}/health", headers=forged),  # the probe
            ]

    assert [r.status_code for r in responses] == [200, 200]
    assert seen == [CLIENT_IP, CLIENT_IP]  # set, not appended to ("203.0.113.66, 127.0.0.2")


def failed_login(base: str, source_ip: str, forged: str) -> httpx.Response:
    """A wrong password for 'operator', sent from ``source_ip`` claiming ``forged``."""
    transport = httpx.HTTPTransport(local_address=source_ip, verify=False)  # noqa: S501
    with httpx.Client(base_url=base, transport=transport, follow_redirects=False) as http:
        page = http.get(LOGIN, headers={"X-Forwarded-For": forged})
        assert page.status_code == 200, page.text[:300]
        token = http.cookies["csrftoken"]
        return http.post(
            LOGIN,
            data={
                "csrfmiddlewaretoken": token,
                "login_view-current_step": "auth",
                "auth-username": "operator",
                "auth-password": "not-the-password",
            },
            headers={"X-Forwarded-For": forged, "Referer": f"{base}{LOGIN}"},
        )


def recorded_ips() -> set[str]:
    return set(AccessAttempt.objects.values_list("ip_address", flat=True))


def test_failed_login_when_forged_forwarded_for_through_nginx_then_axes_records_the_real_ip(
    nginx: str,
) -> None:
    get_user_model().objects.create_user("operator", password="the-password", is_staff=True)

    response = failed_login(nginx, CLIENT_IP, FORGED_IP)

    assert response.status_code == 200, response.text[:300]  # the form again, with an error
    assert recorded_ips() == {CLIENT_IP}


def test_failed_login_when_forged_forwarded_for_straight_to_uvicorn_then_ignored(
    web: str,
) -> None:
    get_user_model().objects.create_user("operator", password="the-password", is_staff=True)

    response = failed_login(f"http://{web}", CLIENT_IP, FORGED_IP)

    assert response.status_code == 200, response.text[:300]
    assert recorded_ips() == {CLIENT_IP}  # not the proxy: its header is not believed


def test_nginx_when_a_client_floods_the_login_or_the_api_then_429_and_other_pages_unaffected(
    echo_upstream: tuple[str, list[str]], tmp_path: Path
) -> None:
    upstream, _ = echo_upstream
    with (
        nginx_in_front_of(upstream, free_port(), tmp_path) as base,
        httpx.Client(verify=False) as http,  # noqa: S501 - the test's self-signed cert
    ):
        logins = [http.get(f"{base}/account/login/").status_code for _ in range(25)]
        admin = http.get(f"{base}/admin/login/").status_code
        api = [http.get(f"{base}/api/risk").status_code for _ in range(40)]
        pages = [http.get(f"{base}/risk/").status_code for _ in range(40)]

    assert logins[:11] == [200] * 11  # the first and a burst of 10
    assert logins.count(429) >= 10
    assert admin == 429  # the same zone: one budget for both login forms
    assert api[:21] == [200] * 21
    assert api.count(429) >= 10
    assert pages == [200] * 40
