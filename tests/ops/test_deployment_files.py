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
    assert {"postgres", "redis", "trading-core", "execution"} <= internal_only
    assert yaml.safe_load(COMPOSE.read_text())["networks"]["internal"]["internal"] is True


def render_nginx(tmp_path: Path, upstream: str, http_port: int, https_port: int) -> Path:
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
