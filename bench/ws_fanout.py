"""Websocket fan-out: P&L updates to many authenticated panel clients at once.

Usage::

    ENVIRONMENT=test .venv/bin/python scripts/services.py test -- .venv/bin/python bench/ws_fanout.py

What runs, all real: a ``uvicorn tradebot.asgi:application`` subprocess (the production
ASGI stack: origin check, session auth, django_otp verification, the panel consumer), the
Redis channel layer, and N websocket clients (the ``websockets`` package) in this process,
each logged in with its own session of an OTP-verified staff user (a session row written
through Django's session store with django_otp's device key, as the two-factor login
leaves it). The publisher calls ``apps.core.realtime.broadcast_now(GROUP_PANEL,
"equity.updated", ...)`` RATE times a second, as the engine does; every payload carries a
sequence number and its send time.

Printed per run (baseline: 1 client; then --clients, default 200): connections accepted,
updates sent, delivered, lost (expected - received, per client, by sequence number) and the
delivery latency (received - sent; one machine, one clock) p50 / p99 / max. Targets: p99 under
100 ms and zero lost at 200 clients, 4 updates per second.

Set up like bench/decision_latency.py: a throwaway database it creates on DATABASE_URL's
server (the one DATABASE_URL names if it does not exist yet, else ``<name>_bench_ws_<hex>``;
dropped at the end) migrated by ``manage.py migrate``, and Redis database BENCH_REDIS_DB
(default 14) on REDIS_URL's server. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import REPO, bench_database, database_name, percentile, redis_db_url  # noqa: E402

# --------------------------------------------------------------------------- sessions


def verified_session_cookies(n: int) -> list[str]:
    """n session cookies of one OTP-verified staff user (what the two-factor login leaves)."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from apps.panel.auth import SESSION_LAST_SEEN_KEY, SESSION_STARTED_KEY

    user, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True}
    )
    device, _ = TOTPDevice.objects.get_or_create(user=user, name="default", confirmed=True)
    cookies = []
    now = time.time()
    for _ in range(n):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session[SESSION_STARTED_KEY] = now
        session[SESSION_LAST_SEEN_KEY] = now
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``uvicorn tradebot.asgi:application`` as a subprocess."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env, self.port, self.log_path = env, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "tradebot.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited:\n{self.tail()}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)  # noqa: S310
                return
            time.sleep(0.2)
        raise RuntimeError(f"uvicorn did not answer in {timeout} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --------------------------------------------------------------------------- one run


async def run_fanout(port: int, cookies: list[str], rate: float, seconds: float) -> dict:
    import websockets

    from apps.core.realtime import GROUP_PANEL, broadcast_now

    url = f"ws://127.0.0.1:{port}/ws/panel/"
    origin = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    received: list[set[int]] = [set() for _ in cookies]
    run_id = f"{time.time():.6f}"
    connected = 0
    ready = asyncio.Event()
    finished = asyncio.Event()

    async def client(i: int, cookie: str) -> None:
        nonlocal connected
        async with websockets.connect(
            url,
            additional_headers={"Cookie": cookie, "Origin": origin},
            max_queue=None,
            open_timeout=30,
        ) as ws:
            connected += 1
            if connected == len(cookies):
                ready.set()
            while not finished.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.time()
                msg = json.loads(raw)
                p = msg.get("payload", {})
                if msg.get("type") != "equity.updated" or p.get("run") != run_id:
                    continue
                latencies.append(now - float(p["sent_at"]))
                received[i].add(int(p["seq"]))

    tasks = [asyncio.create_task(client(i, c)) for i, c in enumerate(cookies)]
    try:
        await asyncio.wait_for(ready.wait(), timeout=60)
    except TimeoutError:
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception() from None
        raise RuntimeError(f"only {connected}/{len(cookies)} clients connected") from None
    await asyncio.sleep(0.5)  # every consumer joined its group before the first update

    n = int(seconds * rate)
    start = time.monotonic()
    for seq in range(n):
        # Pace on the schedule (not sleep-after-send), as the engine's marks would.
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        broadcast_now(
            GROUP_PANEL,
            "equity.updated",
            {
                "run": run_id,
                "seq": seq,
                "sent_at": time.time(),
                "account": "paper",
                "ts": "2024-03-01T00:00:00Z",
                "equity": "100123.456789",
                "pnl": "123.456789",
                "pnl_pct": "0.00123456789",
                "drawdown": "0.0012",
            },
        )
    await asyncio.sleep(2.0)  # drain
    finished.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    lost = sum(n - len(r & set(range(n))) for r in received)
    return {
        "clients": len(cookies),
        "connected": connected,
        "sent": n,
        "delivered": sum(len(r) for r in received),
        "lost": lost,
        "latencies_ms": sorted(x * 1000 for x in latencies),
    }


def report(label: str, r: dict) -> None:
    lat = r["latencies_ms"]
    figures = (
        f"p50={percentile(lat, 0.5):7.2f} ms  p99={percentile(lat, 0.99):7.2f} ms  "
        f"max={lat[-1]:7.2f} ms"
        if lat
        else "no deliveries"
    )
    print(
        f"  {label:<22} clients={r['connected']:>4}/{r['clients']:<4} sent={r['sent']:>4}  "
        f"delivered={r['delivered']:>6}  lost={r['lost']:>4}  {figures}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=4.0, help="updates per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="publishing time per run")
    args = parser.parse_args()

    print(f"websocket fan-out bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    os.environ.setdefault("ENVIRONMENT", "test")
    redis_url = redis_db_url(
        os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1",
        int(os.environ.get("BENCH_REDIS_DB", "14")),
    )
    os.environ.update({"REDIS_URL": redis_url, "CHANNELS_REDIS_URL": redis_url})
    with bench_database("ws") as bench_url:
        env = {
            **os.environ,
            "DATABASE_URL": bench_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "CHANNELS_REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        server = Server(env, free_port(), Path(tempfile.gettempdir()) / "ws_fanout_uvicorn.log")
        try:
            cookies = verified_session_cookies(args.clients)
            from django.db import connections

            connections.close_all()
            server.start()
            print(
                f"uvicorn on 127.0.0.1:{server.port}, Redis {redis_url}, "
                f"database {database_name(bench_url)}; "
                f"{args.rate:g} updates/s for {args.seconds:g} s per run"
            )
            base = asyncio.run(run_fanout(server.port, cookies[:1], args.rate, args.seconds))
            report("baseline (1 client)", base)
            full = asyncio.run(run_fanout(server.port, cookies, args.rate, args.seconds))
            report(f"{args.clients} clients", full)
            if full["latencies_ms"]:
                p99 = percentile(full["latencies_ms"], 0.99)
                print(
                    f"  target p99 < 100 ms: {'met' if p99 < 100 else 'NOT met'} ({p99:.1f} ms); "
                    f"lost updates: {full['lost']} (target 0)"
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
