"""The deployed settings (ENVIRONMENT=prod, the real module and entrypoint) answer the host
names the compose stack uses from inside, with DJANGO_ALLOWED_HOSTS set to the public name
only as docs/deploy.md says: compose's healthcheck (127.0.0.1:8000), Prometheus' scrape and
Alertmanager's webhooks (trading-core:8000), and the real nginx's port-80 /health (whose
upstream is named tradebot_web, a name Django refuses and cannot allow-list)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.ops.test_deployment_files import COMPOSE, need, render_nginx
from tests.settings.test_deployed_validation import GOOD_METRICS_TOKEN, write_env

# The marker makes django_db_setup create the test database the app process serves from.
pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
PUBLIC = "tradebot.example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthcheck_url(service: str) -> str:
    test = yaml.safe_load(COMPOSE.read_text())["services"][service]["healthcheck"]["test"]
    (url,) = [arg for arg in test if arg.startswith("http://")]
    return url


def get(port: int, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET url's path from the server on port, with url's host as the Host header."""
    parts = urlsplit(url)
    return httpx.get(
        f"http://127.0.0.1:{port}{parts.path}",
        headers={"Host": parts.netloc, **(headers or {})},
        timeout=10,
    )


@pytest.fixture(scope="module")
def app_port(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[int]:
    """`docker/entrypoint.sh web` (uvicorn) under the prod settings, on the test database,
    connected as the application role (prod refuses the owner: docs/security.md)."""
    from tests.dbroles import app_role_create

    tmp = tmp_path_factory.mktemp("prod-app")
    with django_db_blocker.unblock():
        role = app_role_create()
    env_file = write_env(
        tmp / ".env.prod",
        DJANGO_ALLOWED_HOSTS=PUBLIC,
        DATABASE_URL=role.url,
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "ENV_FILE", "SALT_KEY"))
        and k not in ("CELERY_BROKER_URL", "LOG_DIR")
    }
    env.update(
        {
            "ENVIRONMENT": "prod",
            "ENV_FILE": str(env_file),
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        }
    )
    port = free_port()
    log = (tmp / "app.log").open("w")
    proc = subprocess.Popen(
        ["sh", "docker/entrypoint.sh", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail("the app did not start: " + (tmp / "app.log").read_text()[-3000:])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the app did not listen: " + (tmp / "app.log").read_text()[-3000:])
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_compose_healthcheck_when_run_as_written_then_healthy(app_port: int) -> None:
    url = healthcheck_url("trading-core")  # curl http://127.0.0.1:8000/health

    response = get(app_port, url)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_prometheus_scrape_when_by_the_compose_name_then_metrics(app_port: int) -> None:
    prometheus = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "trading-core"]
    (target,) = job["static_configs"][0]["targets"]

    # Prometheus sends the bearer token from its credentials file (the same secret as the app's)
    assert job["authorization"]["credentials_file"]
    bearer = {"Authorization": f"Bearer {GOOD_METRICS_TOKEN}"}
    response = get(app_port, f"http://{target}{job.get('metrics_path', '/metrics')}", bearer)

    assert response.status_code == 200, response.text[:500]
    assert "trading_system_mode{" in response.text, [
        line for line in response.text.splitlines() if "trading_" in line or "backup_" in line
    ]


@pytest.mark.parametrize("hook", ["SMS_WEBHOOK_URL", "WATCHDOG_URL"])
def test_alertmanager_webhook_when_posted_to_the_compose_name_then_reaches_the_view(
    app_port: int, hook: str
) -> None:
    """Over plain HTTP, Host trading-core:8000: neither refused (400) nor redirected to
    https (301); without credentials the view itself answers 401."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from render_alertmanager import DEFAULTS
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    parts = urlsplit(DEFAULTS[hook])

    response = httpx.post(
        f"http://127.0.0.1:{app_port}{parts.path}",
        headers={"Host": parts.netloc},
        json={},
        timeout=10,
    )

    assert response.status_code == 401, response.text[:500]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="alertmanager"'


def test_hosts_when_public_name_or_another_then_public_served_other_refused(
    app_port: int,
) -> None:
    assert get(app_port, f"http://{PUBLIC}/health").status_code == 200
    assert get(app_port, "http://attacker.example.net/health").status_code == 400


def test_nginx_health_when_compose_healthcheck_runs_then_proxied_to_the_app(
    app_port: int, tmp_path: Path
) -> None:
    """nginx on loopback with the shipped config in front of the prod app: compose's nginx
    healthcheck (wget http://127.0.0.1/health) and a client with the public name."""
    nginx = need("nginx", "nginx")
    http_port = free_port()
    conf = render_nginx(tmp_path, f"127.0.0.1:{app_port}", http_port, free_port())
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start: " + (tmp_path / "error.log").read_text())
                time.sleep(0.1)

        compose_check = get(http_port, healthcheck_url("nginx"))
        public = get(http_port, f"http://{PUBLIC}/health")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    assert compose_check.status_code == 200, compose_check.text[:500]
    assert compose_check.json()["status"] == "ok"
    assert public.status_code == 200, public.text[:500]
