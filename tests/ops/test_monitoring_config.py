"""The monitoring configuration, checked by the real promtool and amtool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "config" / "prometheus"
RENDER = ROOT / "scripts" / "render_alertmanager.py"
VALUES = {
    "SMTP_SMARTHOST": "smtp.example.com:587",
    "SMTP_FROM": "tradebot@example.com",
    "SMTP_USER": "tradebot",
    "SMTP_PASSWORD": "not-a-real-password",
    "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
    "TELEGRAM_CHAT_ID": "-1001234",
    "ALERT_EMAIL": "ops@example.com",
    "ALERTMANAGER_WEBHOOK_TOKEN": "hook-token-0123456789abcdef",
}


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{name} missing under CI: .ci/run must install the Debian package {package}"
            )
        pytest.skip(f"needs the Debian package {package} ({name})")
    return path


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_alert_rules_when_checked_then_valid() -> None:
    result = run(tool("promtool", "prometheus"), "check", "rules", "alerts.yml", cwd=PROM)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 21 rules found" in result.stdout


def test_alert_rules_when_unit_tested_then_every_rule_fires_and_holds_as_expected() -> None:
    result = run(tool("promtool", "prometheus"), "test", "rules", "alerts.test.yml", cwd=PROM)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_when_listed_then_every_rule_has_a_unit_test() -> None:
    import yaml

    rules = {
        r["alert"]
        for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    tests = yaml.safe_load((PROM / "alerts.test.yml").read_text())["tests"]
    tested = {
        case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]
    }

    assert rules - tested == set()


def test_prometheus_config_when_checked_then_valid(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics_token"  # the compose secret (docker-compose.prod.yml)
    token_file.write_text("scrape-token-for-tests-0123456789abcdef\n")
    config = (
        (PROM / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/alerts.yml", str(PROM / "alerts.yml"))
        .replace("/run/secrets/metrics_token", str(token_file))
    )
    assert str(token_file) in config  # the scrape of the app uses the token file
    (tmp_path / "prometheus.yml").write_text(config)

    result = run(
        tool("promtool", "prometheus"), "check", "config", str(tmp_path / "prometheus.yml")
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def alertmanager_yml(tmp_path: Path) -> Path:
    out = tmp_path / "alertmanager.yml"
    result = run(sys.executable, str(RENDER), str(out), env={**os.environ, **VALUES})
    assert result.returncode == 0, result.stderr
    return out


def test_alertmanager_config_when_rendered_then_amtool_accepts_it(alertmanager_yml: Path) -> None:
    result = run(tool("amtool", "prometheus-alertmanager"), "check-config", str(alertmanager_yml))

    assert result.returncode == 0, result.stdout + result.stderr
    assert oct(alertmanager_yml.stat().st_mode & 0o777) == "0o640"


def test_alertmanager_config_when_rendered_then_its_user_reads_it_and_others_cannot() -> None:
    """The image runs as nobody (65534) with the compose group_add of the file's group:
    that process reads the config, any other user does not (it holds the tokens)."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())
    service = compose["services"]["alertmanager"]
    assert service["group_add"] == [
        "${ALERTMANAGER_CONFIG_GID:?set ALERTMANAGER_CONFIG_GID: "
        "the group id render_alertmanager.py printed}"
    ]
    assert any(
        v.startswith("./config/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml")
        for v in service["volumes"]
    )
    import tempfile

    # A directory anyone may traverse (pytest's tmp_path is private to its user), like
    # the bind-mounted config directory.
    folder = Path(tempfile.mkdtemp(prefix="am-config-"))
    try:
        folder.chmod(0o755)
        alertmanager_yml = folder / "alertmanager.yml"
        rendered = run(
            sys.executable, str(RENDER), str(alertmanager_yml), env={**os.environ, **VALUES}
        )
        assert rendered.returncode == 0, rendered.stderr
        st = alertmanager_yml.stat()
        assert f"set ALERTMANAGER_CONFIG_GID={st.st_gid}" in rendered.stdout
        assert st.st_mode & 0o007 == 0  # nothing for others
        assert st.st_mode & 0o040  # the group reads
        if os.geteuid() != 0:
            return  # switching to nobody needs root; the mode bits above are the same check
        nobody = 65534

        def cat(**groups: object) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["cat", str(alertmanager_yml)],
                user=nobody,
                group=nobody,
                capture_output=True,
                text=True,
                timeout=30,
                **groups,  # type: ignore[call-overload]
            )

        as_container = cat(extra_groups=[st.st_gid])
        as_someone_else = cat(extra_groups=[])

        assert as_container.returncode == 0, as_container.stderr
        assert "receivers:" in as_container.stdout
        assert as_someone_else.returncode != 0
        assert "Permission denied" in as_someone_else.stderr
    finally:
        shutil.rmtree(folder)


def test_render_when_group_given_that_is_not_a_number_then_refused(tmp_path: Path) -> None:
    out = tmp_path / "alertmanager.yml"

    result = run(
        sys.executable,
        str(RENDER),
        str(out),
        env={**os.environ, **VALUES, "ALERTMANAGER_CONFIG_GID": "docker"},
    )

    assert result.returncode != 0
    assert "ALERTMANAGER_CONFIG_GID must be a numeric group id, not 'docker'" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=info", "alertname=OpenPositions"], "log-only"),
        (["severity=warning", "alertname=HighDrawdown"], "telegram"),
        (["severity=error", "alertname=BrokerDisconnected"], "telegram-email"),
        (["severity=error", "alertname=TargetDown"], "telegram-email"),
        (["severity=error", "alertname=MetricAbsent"], "telegram-email"),
        (["severity=critical", "alertname=CriticalDrawdown"], "telegram-email-sms"),
        (["severity=info", "alertname=Watchdog"], "watchdog"),
    ],
)
def test_alertmanager_routes_when_severity_given_then_its_channels(
    alertmanager_yml: Path, labels: list[str], receiver: str
) -> None:
    result = run(
        tool("amtool", "prometheus-alertmanager"),
        "config",
        "routes",
        "test",
        f"--config.file={alertmanager_yml}",
        f"--verify.receivers={receiver}",
        *labels,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_render_when_a_value_is_missing_then_named_and_nothing_written(tmp_path: Path) -> None:
    out = tmp_path / "alertmanager.yml"
    env = {k: v for k, v in os.environ.items() if k not in VALUES}
    env.update({k: v for k, v in VALUES.items() if k != "TELEGRAM_BOT_TOKEN"})

    result = run(sys.executable, str(RENDER), str(out), env=env)

    assert result.returncode != 0
    assert "missing values: TELEGRAM_BOT_TOKEN" in result.stderr
    assert not out.exists()
