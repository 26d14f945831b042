"""Deployment files checked offline: the compose spec schema and the real nginx."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.prod.yml"
NGINX_CONF = ROOT / "docker" / "nginx.conf"


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{binary} missing under CI: .ci/run must install the Debian package {package}"
            )
        pytest.skip(f"needs the Debian package {package}")
    return path


def test_compose_file_when_validated_then_matches_the_compose_spec() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_when_read_then_only_nginx_publishes_ports_and_all_have_healthchecks() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]

    published = {name for name, s in services.items() if s.get("ports")}
    unchecked = {
        name
        for name, s in services.items()
        if "healthcheck" not in s and name not in {"migrate", "node-exporter"}
    }
    internal_only = {name for name, s in services.items() if s.get("networks") == ["internal"]}

    assert published == {"nginx"}
    assert unchecked == set()
    assert {"postgres", "redis", "influxdb", "trading-core", "beat"} <= internal_only
    assert yaml.safe_load(COMPOSE.read_text())["networks"]["internal"]["internal"] is True


def test_compose_file_when_read_then_databases_only_on_the_internal_network() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]

    # PostgreSQL, Redis and InfluxDB: nothing published, no route out, so only the
    # containers on the internal network reach them (spec 9.1 "BD directa: solo localhost").
    for name in ("postgres", "redis", "influxdb"):
        assert services[name]["networks"] == ["internal"], name
        assert "ports" not in services[name]
        assert "expose" not in services[name]
    assert compose["networks"]["internal"]["internal"] is True
    on_public = {n for n, s in services.items() if "public" in s.get("networks", [])}
    assert on_public == {"nginx"}


@pytest.mark.parametrize(
    ("name", "command", "healthcheck"),
    [("engine", ["manage", "run_engine"],
      # healthy = bars flowing and decisions being made, not "a process exists"
      ["CMD", "python", "manage.py", "engine_health"]),
     ("telegram", ["manage", "telegram_bot"],
      ["CMD-SHELL", "pgrep -f 'manage.py telegram_bot' >/dev/null"])],
)  # fmt: skip
def test_compose_file_when_read_then_engine_and_telegram_bot_services(
    name: str, command: list[str], healthcheck: list[str]
) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    service = services[name]

    assert service["command"] == command
    assert service["restart"] == "unless-stopped"
    assert service["env_file"] == ["config/.env.prod"]
    assert service["environment"]["ENVIRONMENT"] == "prod"
    assert set(service["networks"]) == {"internal", "egress"}
    assert "ports" not in service
    assert service["healthcheck"]["test"] == healthcheck
    assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert service["stop_grace_period"]
    # the entrypoint's "manage" role is what runs it
    assert (
        'manage)\n        exec python manage.py "$@"'
        in (ROOT / "docker" / "entrypoint.sh").read_text()
    )


def test_compose_file_when_read_then_every_app_container_checks_the_env_file_mode() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    app = [n for n, s in services.items() if s.get("image") == "tradebot:latest"]

    assert {"trading-core", "execution", "worker", "beat", "engine", "telegram", "migrate"} <= set(
        app
    )
    for name in app:
        assert services[name]["environment"]["ENV_FILE_MODE_CHECK"] == "/run/tradebot/env-file"
        assert "./config/.env.prod:/run/tradebot/env-file:ro" in services[name]["volumes"]


def test_compose_file_when_read_then_backups_on_a_named_volume_owned_by_the_app_user() -> None:
    """BACKUP_DIR (the image's /app/var/backups) outlives a redeploy: a named volume in every
    app container (backup runs in the worker, restore from trading-core), created by the
    image as the app user's directory so the new volume is the app user's too."""
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    app = [n for n, s in services.items() if s.get("image") == "tradebot:latest"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()

    for name in app:
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts.get("/app/var/backups") == "backups", name
        # the app writes its logs and models too: named volumes, never a root-owned bind
        assert (mounts.get("/app/logs"), mounts.get("/app/models")) == ("logs", "models"), name
        writable_binds = [
            v for v in services[name]["volumes"] if v.startswith(".") and not v.endswith(":ro")
        ]
        assert writable_binds == [], name
    assert {"backups", "logs", "models"} <= set(compose["volumes"])
    # BACKUP_DIR's default is BASE_DIR/var/backups; the env examples do not move it elsewhere
    assert (
        'env.path("BACKUP_DIR", default=BASE_DIR / "var" / "backups")'
        in (ROOT / "tradebot" / "settings" / "components" / "ops.py").read_text()
    )
    for example in ("prod", "staging"):
        text = (ROOT / "config" / f".env.{example}.example").read_text()
        assert "BACKUP_DIR=" not in text or "BACKUP_DIR=/app/var/backups" in text
    assert "mkdir -p /app/var/backups" in dockerfile
    assert "chown -R tradebot:tradebot /app/var " in dockerfile
    assert "\nUSER tradebot\n" in dockerfile


@pytest.mark.parametrize("example", ["prod", "staging"])
def test_env_example_when_read_then_database_and_redis_at_their_compose_host_names(
    example: str,
) -> None:
    """Inside a container 127.0.0.1 is the container itself: the app reaches PostgreSQL and
    Redis by their compose service names, on a network it shares with them."""
    from urllib.parse import urlsplit

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    values = dict(
        line.split("=", 1)
        for line in (ROOT / "config" / f".env.{example}.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )

    for key, service, port in (("DATABASE_URL", "postgres", 5432), ("REDIS_URL", "redis", 6379)):
        url = urlsplit(values[key])
        assert (url.hostname, url.port) == (service, port), key
        shared = set(services[service]["networks"]) & set(services["trading-core"]["networks"])
        assert shared, (key, service)


def run_entrypoint(env_file: Path | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"]}
    if env_file is not None:
        env["ENV_FILE_MODE_CHECK"] = str(env_file)
    return subprocess.run(
        ["sh", str(ROOT / "docker" / "entrypoint.sh"), "no-such-role"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_entrypoint_when_env_file_readable_by_others_then_refuses_to_start(
    tmp_path: Path, mode: int
) -> None:
    env_file = tmp_path / ".env.prod"
    env_file.write_text("DJANGO_DEBUG=false\n")
    env_file.chmod(mode)

    result = run_entrypoint(env_file)

    assert result.returncode == 2
    assert f"is mode {mode:o}, readable by group or others" in result.stderr
    assert "chmod 600 config/.env.prod" in result.stderr


def test_entrypoint_when_env_file_600_then_goes_on_to_start_the_role(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.prod"
    env_file.write_text("DJANGO_DEBUG=false\n")
    env_file.chmod(0o600)

    result = run_entrypoint(env_file)

    # past the check: the (bogus) role is what stops it
    assert result.returncode == 2
    assert result.stderr.startswith("unknown role 'no-such-role'")


def test_entrypoint_when_env_file_not_mounted_then_refuses(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path / "missing")

    assert result.returncode == 2
    assert "the env file is not mounted" in result.stderr


def test_dockerignore_when_read_then_env_files_never_copied_into_the_image() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()

    assert "config/.env.*" in lines
    assert "!config/.env.*.example" in lines
    assert lines.index("config/.env.*") < lines.index("!config/.env.*.example")


def render_nginx(
    tmp_path: Path, upstream: str, http_port: int, https_port: int, grafana: str = ""
) -> Path:
    """The shipped config with loopback ports, a self-signed certificate and private paths."""
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(tls / "privkey.pem"),
            "-out",
            str(tls / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    conf = NGINX_CONF.read_text()
    conf = conf.replace("server trading-core:8000;", f"server {upstream};")
    conf = conf.replace("server grafana:3000;", f"server {grafana or upstream};")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    conf = conf.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    conf = conf.replace("/etc/nginx/tls/", f"{tls}/")
    conf = conf.replace(
        "pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;"
    )
    conf = conf.replace(
        "http {",
        "http {\n    access_log off;\n"
        + "".join(
            f"    {k}_temp_path {tmp_path}/{k};\n"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        1,
    )
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    return path


def test_nginx_config_when_tested_then_nginx_accepts_it(tmp_path: Path) -> None:
    nginx = need("nginx", "nginx")
    conf = render_nginx(tmp_path, "127.0.0.1:18000", 18080, 18443)

    result = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_github_workflow_when_validated_then_matches_the_workflow_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    workflow = ROOT / ".github" / "workflows" / "ci-deploy.yml"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    assert jobs["deploy"]["needs"] == "test"
    assert jobs["deploy"]["environment"]["name"] == "production"
    assert "refs/heads/main" in jobs["deploy"]["if"]
    assert jobs["deploy-staging"]["environment"]["name"] == "staging"
    assert "refs/heads/develop" in jobs["deploy-staging"]["if"]
    for job, env_file in (
        ("deploy", "config/.env.prod"),
        ("deploy-staging", "config/.env.staging"),
    ):
        (step,) = jobs[job]["steps"]
        script = step["with"]["script"]
        assert "git show ${{ github.sha }}:scripts/deploy.sh" in script
        assert f"tradebot-deploy.sh ${{{{ github.sha }}}} {env_file}" in script
