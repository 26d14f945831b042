"""staging/prod refuse bad configurations at start, naming the problem and the fix."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tradebot.settings.validation import DeployedConfig, problems

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = secrets.token_urlsafe(64)
GOOD_SALT = secrets.token_urlsafe(24)
GOOD_DB = "postgres://tradebot_app:s3cret-Pa55word-xyz@127.0.0.1:5432/tradebot"
GOOD_METRICS_TOKEN = secrets.token_urlsafe(32)


def config(**overrides: object) -> DeployedConfig:
    values: dict[str, object] = {
        "environment": "prod",
        "debug": False,
        "secret_key": GOOD_KEY,
        "database_url": GOOD_DB,
        "allowed_hosts": ["bot.example.com"],
        "env_file": None,
        "salt_key": GOOD_SALT,
        "metrics_token": GOOD_METRICS_TOKEN,
    }
    values.update(overrides)
    return DeployedConfig(**values)  # type: ignore[arg-type]


def test_problems_when_configuration_is_good_then_none() -> None:
    assert problems(config()) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"debug": True}, "DEBUG is on in prod: set DJANGO_DEBUG=false"),
        ({"secret_key": ""}, "DJANGO_SECRET_KEY is missing"),
        ({"secret_key": "changeme"}, "DJANGO_SECRET_KEY is a default or weak value"),
        (
            {"secret_key": "django-insecure-" + "x" * 60},
            "DJANGO_SECRET_KEY is a default or weak value",
        ),
        ({"secret_key": "short-but-random-Kq8"}, "DJANGO_SECRET_KEY is a default or weak value"),
        ({"database_url": ""}, "DATABASE_URL is missing"),
        (
            {"database_url": "postgres://tradebot@127.0.0.1/tradebot"},
            "DATABASE_URL has no password or a default",
        ),
        (
            {"database_url": "postgres://postgres:postgres@db/tradebot"},
            "DATABASE_URL has no password or a default",
        ),
        ({"allowed_hosts": []}, "DJANGO_ALLOWED_HOSTS must list"),
        ({"allowed_hosts": ["*"]}, "DJANGO_ALLOWED_HOSTS must list"),
        # Weak values that passed before (issue 13, item 11)
        ({"allowed_hosts": [".com"]}, "DJANGO_ALLOWED_HOSTS must list"),
        (
            {"secret_key": ("CHANGE-ME-" * 6)},  # 60 characters of a placeholder
            "DJANGO_SECRET_KEY is a default or weak value: it contains 'change'",
        ),
        (
            {"secret_key": "ab" * 40},  # long, but a pattern
            "DJANGO_SECRET_KEY is a default or weak value: it has about 80 bits",
        ),
        (
            {"database_url": "postgres://tradebot_app:Tradebot123@db/tradebot"},
            "DATABASE_URL's password contains 'tradebot'",
        ),
        (
            {"database_url": "postgres://tradebot_app:Summer2026Summer@db/tradebot"},
            "DATABASE_URL's password has about",
        ),
        ({"salt_key": ""}, "SALT_KEY is missing: generate one with"),
        ({"salt_key": "short-salt-K1"}, "SALT_KEY is a default or weak value"),
        ({"salt_key": "dev-only-salt-not-for-deployment"}, "SALT_KEY is a default or weak value"),
        ({"salt_key": GOOD_KEY}, "SALT_KEY is a default or weak value"),
        ({"metrics_token": ""}, "METRICS_BEARER_TOKEN is missing or weak"),
        ({"metrics_token": "short-token"}, "METRICS_BEARER_TOKEN is missing or weak"),
        (
            {"database_owner_url": "postgres://tradebot_app:other-Strong-pw-9@db/tradebot"},
            "DATABASE_URL and DATABASE_OWNER_URL use the same role 'tradebot_app'",
        ),
        (
            {"database_owner_url": "postgres://tradebot:changeme@db/tradebot"},
            "DATABASE_OWNER_URL has no password or a default one",
        ),
    ],
)
def test_problems_when_one_value_is_bad_then_it_is_named_with_the_fix(
    overrides: dict, expected: str
) -> None:
    found = problems(config(**overrides))

    assert len(found) == 1
    assert found[0].startswith(expected)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_problems_when_env_file_readable_by_others_then_chmod_600_asked(
    tmp_path: Path, mode: int
) -> None:
    env_file = tmp_path / ".env.prod"
    env_file.write_text("DJANGO_DEBUG=false\n")
    env_file.chmod(mode)

    found = problems(config(env_file=env_file))

    assert found == [
        f"{env_file} is readable by group or others (mode {mode:04o}): run `chmod 600 {env_file}`"
    ]


def test_problems_when_env_file_is_600_then_accepted(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.prod"
    env_file.write_text("DJANGO_DEBUG=false\n")
    env_file.chmod(0o600)

    assert problems(config(env_file=env_file)) == []


GOOD_ALERTING = {
    "TELEGRAM_BOT_TOKEN": "123456:real-looking-token",
    "TELEGRAM_CHAT_ID": "-1001234",
    "TELEGRAM_ALLOWED_USER_IDS": "111222333",
    "ALERT_EMAIL": "ops@example.com",
    "SMTP_SMARTHOST": "smtp.example.com:587",
    "ALERTMANAGER_WEBHOOK_TOKEN": secrets.token_urlsafe(32),
    "NOTIFY_SMS_URL": "https://sms.example.com/v1/sms",
    "NOTIFY_SMS_TOKEN": "sms-token",
    "NOTIFY_SMS_RECIPIENTS": "+34600000001",
}


def run_manage(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DJANGO_", "DATABASE_", "REDIS_URL", "ENV_FILE", "SALT_KEY", "METRICS_BEARER")
        )
    }
    env.update({"ENVIRONMENT": "prod", "ENV_FILE": str(env_file)})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_env(path: Path, mode: int = 0o600, **values: str) -> Path:
    base = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": GOOD_KEY,
        "SALT_KEY": GOOD_SALT,
        "DATABASE_URL": GOOD_DB,
        "DJANGO_ALLOWED_HOSTS": "bot.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/1",
        "METRICS_BEARER_TOKEN": GOOD_METRICS_TOKEN,
        **GOOD_ALERTING,
    }
    base.update(values)
    path.write_text("".join(f"{k}={v}\n" for k, v in base.items()))
    path.chmod(mode)
    return path


def test_check_deploy_when_prod_env_is_valid_then_clean(tmp_path: Path) -> None:
    result = run_manage(
        write_env(tmp_path / ".env.prod"), "check", "--deploy", "--fail-level", "WARNING"
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("values", "mode", "expected"),
    [
        ({"DJANGO_DEBUG": "true"}, 0o600, "DEBUG is on in prod"),
        ({"DJANGO_SECRET_KEY": ""}, 0o600, "DJANGO_SECRET_KEY is missing"),
        ({"DJANGO_SECRET_KEY": "changeme"}, 0o600, "DJANGO_SECRET_KEY is a default or weak value"),
        ({}, 0o644, "readable by group or others"),
        ({"SALT_KEY": ""}, 0o600, "SALT_KEY is missing"),
        ({"METRICS_BEARER_TOKEN": ""}, 0o600, "METRICS_BEARER_TOKEN is missing or weak"),
    ],
)
def test_prod_start_when_configuration_bad_then_refuses_naming_problem(
    tmp_path: Path, values: dict[str, str], mode: int, expected: str
) -> None:
    result = run_manage(write_env(tmp_path / ".env.prod", mode, **values), "check")

    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: refusing to start in prod")
    assert expected in result.stderr


def test_env_file_when_os_environment_sets_same_variable_then_os_wins(tmp_path: Path) -> None:
    env_file = write_env(tmp_path / ".env.prod", DJANGO_ALLOWED_HOSTS="from-file.example.com")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "ENV_FILE", "SALT_KEY"))
    }
    env.update(
        {
            "ENVIRONMENT": "prod",
            "ENV_FILE": str(env_file),
            "DJANGO_ALLOWED_HOSTS": "from-os.example.com",
        }
    )
    code = "import django; django.setup(); from django.conf import settings; print(settings.ALLOWED_HOSTS)"
    result = subprocess.run(
        [sys.executable, "-c", "from tradebot.env import setup_settings_module as s; s(); " + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "['from-os.example.com', 'trading-core', '127.0.0.1', 'localhost', '[::1]']"
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("REPLAY_SPEED", "fast", "configuration error: REPLAY_SPEED='fast' is not a valid float"),
        ("REPLAY_SPEED", "-1", "configuration error: REPLAY_SPEED='-1' must be >= 0"),
        (
            "DJANGO_DEBUG",
            "maybe",
            "configuration error: DJANGO_DEBUG='maybe' is not a boolean: use true or false",
        ),
        ("PAPER_FEE_RATE", "1%", "configuration error: PAPER_FEE_RATE='1%' is not a valid decimal"),
        (
            "ENVIRONMENT",
            "production",
            "configuration error: ENVIRONMENT='production' is not one of",
        ),
    ],
)
def test_manage_when_env_value_bad_then_one_line_error_and_exit_2(
    name: str, value: str, expected: str
) -> None:
    env = dict(os.environ, ENVIRONMENT="dev")
    env[name] = value
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.startswith(expected)
    assert result.stderr.count("\n") == 1
