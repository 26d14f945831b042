#!/usr/bin/env python3
"""`make run`: migrate, seed, then web + Celery workers + beat + engine in one terminal.

Run through `scripts/services.py run --`, which provides DATABASE_URL (the application
role), DATABASE_OWNER_URL (the owner: migrate runs as it and grants the application role)
and REDIS_URL.
Output is prefixed by process (honcho); Ctrl-C stops every process cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from honcho.manager import Manager
from honcho.printer import Printer

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HOST = os.environ.get("TRADEBOT_HOST", "127.0.0.1")
PORT = os.environ.get("TRADEBOT_PORT", "8000")

PROCESSES = {
    # No proxy in front in dev: forwarded headers are never believed (a local client could
    # otherwise choose the address the login lockout records; production: entrypoint.sh).
    "web": f"{PY} -m uvicorn tradebot.asgi:application --host {HOST} --port {PORT} "
    "--no-proxy-headers --no-access-log",
    # One sender per account: the execution queue has its own single-process worker.
    "execution": f"{PY} -m celery -A tradebot worker -Q execution -P solo -n execution@%h -l INFO",
    "worker": f"{PY} -m celery -A tradebot worker -Q default,reconciliation,maintenance,ml -c 1 "
    "-n worker@%h -l INFO",
    "beat": f"{PY} -m celery -A tradebot beat -l INFO",
    "engine": f"{PY} manage.py run_engine",
}
# The Telegram bot only when it has a token (the env or config/.env.dev).
TELEGRAM_BOT = f"{PY} manage.py telegram_bot"


def manage(*args: str) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit(f"make run: `manage.py {' '.join(args)}` failed (see above)")
    return result.stdout


def telegram_configured() -> bool:
    """TELEGRAM_BOT_TOKEN set, as the settings read it (environment or config/.env.dev)."""
    code = "from django.conf import settings; print(bool(settings.TELEGRAM_BOT_TOKEN))"
    return manage("shell", "--no-imports", "-c", code).strip().endswith("True")


def main() -> int:
    os.environ.setdefault("ENVIRONMENT", "dev")
    os.environ["PYTHONUNBUFFERED"] = "1"
    print("make run: migrating the database", flush=True)
    manage("migrate", "--noinput")
    login = manage("dev_setup").strip()
    # What the engine trades is data: the replay's plans (ENGINE_* settings as defaults).
    print(manage("plans_seed").strip().splitlines()[-1], flush=True)
    banner = (
        "\n"
        "  Tradebot (dev): recorded market data replayed through the paper broker\n"
        f"  panel:  http://{HOST}:{PORT}/        admin:  http://{HOST}:{PORT}/admin/\n"
        f"  {login.replace('login: ', 'log in: ')}\n"
        "  Ctrl-C stops everything.\n"
    )
    print(banner, flush=True)
    manager = Manager(Printer(sys.stdout))
    # The processes connect as the application role only: the owner's URL is for migrate.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_OWNER_URL"}
    processes = dict(PROCESSES)
    if telegram_configured():
        processes["telegram"] = TELEGRAM_BOT
    for name, cmd in processes.items():
        manager.add_process(name, cmd, cwd=str(ROOT), env=env, quiet=False)
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
