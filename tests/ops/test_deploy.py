"""A deploy pauses trading, replaces the release, checks health, and gives trading back its mode.

The mode logic (``apps.ops.services.deploy``) is tested on the database; ``scripts/deploy.sh``
itself runs against a real git repository (two releases, an origin to fetch from) with
``docker`` and ``curl`` replaced by small fakes on PATH (no Docker engine here): the fake
docker logs each call and runs ``compose exec ... python manage.py <cmd>`` as the real
``manage.py <cmd>`` on the test database, so the pause and restore are the product's own.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.ops.services.deploy import deploy_pause, deploy_restore
from apps.risk.domain.modes import SystemMode
from apps.risk.models import ModeChange
from apps.risk.services.modes import system_mode_get, system_mode_set
from apps.trading.services.kill_switch import kill_switch_engage
from tests.integration.processes import process_env

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "deploy.sh"


def set_mode(mode: SystemMode) -> None:
    system_mode_set(mode=mode, actor="test", source="cli", reason="test setup")


# --------------------------------------------------------------------------- the mode logic


@pytest.mark.django_db
@pytest.mark.parametrize("before", [SystemMode.NORMAL, SystemMode.OBSERVATION])
def test_deploy_when_trading_then_paused_and_restored_to_the_mode_it_had(before) -> None:
    if before is not SystemMode.NORMAL:
        set_mode(before)

    paused = deploy_pause(release="abc123", execute=True)
    assert (paused.changed, system_mode_get()) == (True, SystemMode.PAUSE)
    restored = deploy_restore(release="abc123", execute=True)

    assert (restored.changed, system_mode_get()) == (True, before)
    actors = list(ModeChange.objects.order_by("id").values_list("actor", "to_mode"))
    assert actors[-2:] == [("deploy", "pause"), ("deploy", before.value)]


@pytest.mark.django_db
def test_deploy_when_someone_pauses_during_the_deploy_then_trading_stays_paused() -> None:
    deploy_pause(release="abc123", execute=True)
    set_mode(SystemMode.NORMAL)
    set_mode(SystemMode.PAUSE)  # an operator (or the daily-loss rule) paused meanwhile

    restored = deploy_restore(release="abc123", execute=True)

    assert not restored.changed
    assert system_mode_get() is SystemMode.PAUSE
    assert "resume by hand" in restored.message


@pytest.mark.django_db
def test_deploy_when_killed_before_or_during_then_kill_stays() -> None:
    kill_switch_engage(actor="test", source="cli", reason="test")

    assert not deploy_pause(release="abc123", execute=True).changed
    assert not deploy_restore(release="abc123", execute=True).changed
    assert system_mode_get() is SystemMode.KILL


@pytest.mark.django_db
def test_deploy_when_restore_names_another_release_then_nothing_restored() -> None:
    deploy_pause(release="abc123", execute=True)

    assert not deploy_restore(release="def456", execute=True).changed
    assert system_mode_get() is SystemMode.PAUSE


@pytest.mark.django_db
def test_deploy_mode_command_when_dry_run_or_bad_release_then_nothing_changes() -> None:
    call_command("deploy_mode", "pause", "--release", "abc123")
    assert system_mode_get() is SystemMode.NORMAL
    with pytest.raises(CommandError, match="not a release name"):
        call_command("deploy_mode", "pause", "--release", "abc; rm -rf /", "--execute")
    assert not ModeChange.objects.exists()


# --------------------------------------------------------------------------- the script

FAKE_DOCKER = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["docker", *args]) + "\\n")
if "exec" in args:
    cmd = args[args.index("manage.py") + 1:]
    if cmd[0] == "predeploy_check":
        sys.exit(int(os.environ.get("FAKE_PREDEPLOY_EXIT", "0")))
    sys.exit(subprocess.call([sys.executable, "manage.py", *cmd], cwd=os.environ["FAKE_REPO"]))
for step in ("build", "up"):
    if step in args:
        sys.exit(int(os.environ.get(f"FAKE_{{step.upper()}}_EXIT", "0")))
"""
FAKE_CURL = """#!/bin/sh
echo '["curl"]' >> "$FAKE_LOG"
exit "${FAKE_HEALTH_EXIT:-0}"
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def server(tmp_path):
    """A server checkout at release 1 whose origin has release 2, and the fakes on PATH."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    git(origin, "config", "user.email", "ci@example.com")
    git(origin, "config", "user.name", "ci")
    (origin / "VERSION").write_text("1\n")
    git(origin, "add", "VERSION")
    git(origin, "commit", "-qm", "release 1")
    checkout = tmp_path / "opt-tradebot"
    git(tmp_path, "clone", "-q", str(origin), str(checkout))
    (origin / "VERSION").write_text("2\n")
    git(origin, "commit", "-qam", "release 2")
    env_file = checkout / "config" / ".env.prod"
    env_file.parent.mkdir()
    env_file.write_text("ENVIRONMENT=prod\n")
    env_file.chmod(0o600)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", FAKE_DOCKER.format(python=sys.executable)), ("curl", FAKE_CURL)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    env = process_env(tmp_path, environment="test")
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        FAKE_LOG=str(log),
        FAKE_REPO=str(ROOT),
        HEALTH_TRIES="2",
        HEALTH_WAIT="0",
    )
    return {
        "checkout": checkout,
        "env": env,
        "log": log,
        "release1": git(checkout, "rev-parse", "HEAD"),
        "release2": git(origin, "rev-parse", "HEAD"),
    }


def deploy(server, release: str, **fakes: str) -> subprocess.CompletedProcess[str]:
    env = {**server["env"], **{f"FAKE_{k.upper()}_EXIT": v for k, v in fakes.items()}}
    return subprocess.run(
        ["bash", str(SCRIPT), release, "config/.env.prod"],
        cwd=server["checkout"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def calls(server) -> list[str]:
    """What the script did, in order: manage.py commands and compose/curl steps."""
    out = []
    for line in server["log"].read_text().splitlines():
        args = json.loads(line)
        if "manage.py" in args:
            out.append(" ".join(args[args.index("manage.py") + 1 :][:2]))
        elif args[0] == "curl":
            out.append("curl")
        else:
            out.append(next(a for a in ("build", "up") if a in args))
    return out


@pytest.mark.django_db(transaction=True)
def test_deploy_script_when_all_healthy_then_paused_replaced_and_back_to_normal(server) -> None:
    result = deploy(server, server["release2"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(server) == [
        "predeploy_check",
        "deploy_mode pause",
        "build",
        "up",
        "curl",
        "deploy_mode restore",
    ]
    assert git(server["checkout"], "rev-parse", "HEAD") == server["release2"]
    assert (server["checkout"] / ".previous-release").read_text().strip() == server["release1"]
    assert system_mode_get() is SystemMode.NORMAL
    changes = list(ModeChange.objects.order_by("id").values_list("actor", "from_mode", "to_mode"))
    assert changes == [("deploy", "normal", "pause"), ("deploy", "pause", "normal")]


@pytest.mark.django_db(transaction=True)
def test_deploy_script_when_predeploy_check_fails_then_nothing_changes(server) -> None:
    result = deploy(server, server["release2"], predeploy="1")

    assert result.returncode == 1
    assert "nothing was changed" in result.stdout
    assert calls(server) == ["predeploy_check"]
    assert git(server["checkout"], "rev-parse", "HEAD") == server["release1"]
    assert not ModeChange.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_deploy_script_when_health_fails_then_rolled_back_and_trading_stays_paused(server) -> None:
    result = deploy(server, server["release2"], health="22")

    assert result.returncode == 1
    assert "rolling back" in result.stdout
    assert calls(server) == [
        "predeploy_check",
        "deploy_mode pause",
        "build",
        "up",
        "curl",
        "curl",  # HEALTH_TRIES=2
        "up",  # the previous release, rebuilt
        "curl",
        "curl",  # the fake says unhealthy to it too
    ]
    assert "the previous release is not healthy either: act now" in result.stdout
    assert git(server["checkout"], "rev-parse", "HEAD") == server["release1"]
    assert system_mode_get() is SystemMode.PAUSE  # resumed only by a person


@pytest.mark.django_db(transaction=True)
def test_deploy_script_when_release_or_env_file_bad_then_refused_before_anything(server) -> None:
    bad = deploy(server, "main; reboot")
    missing = subprocess.run(
        ["bash", str(SCRIPT), server["release2"], "config/.env.nope"],
        cwd=server["checkout"],
        env=server["env"],
        capture_output=True,
        text=True,
    )

    assert (bad.returncode, missing.returncode) == (2, 2)
    assert "not a commit or tag" in bad.stderr
    assert "config/.env.nope not found" in missing.stderr
    assert not server["log"].exists()
