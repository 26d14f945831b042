"""The trading MCP server over streamable HTTP on loopback: preview, and confirm to the order
at the paper venue.

Usage (needs PostgreSQL and Redis)::

    make bench BENCH=mcp_latency

(Not bench/mcp.py: a script of that name in bench/ would shadow the SDK package `mcp`.)

A throwaway database (bench/README.md, "Databases"), Redis database ``BENCH_REDIS_DB``
(default 12) on REDIS_URL's server, the shipped ``manage.py mcp_server trading --transport
http`` on a free loopback port and a real ``celery worker -Q execution -P solo``. One agent
(a real token), one SDK ``Client`` session; for each of ``--orders`` instruments (one order
each: the engine does not add to a long, nor send while an order is working):

- ``order_preview``: the tool call's round trip (the checks, a ticket written);
- ``order_confirm``: the tool call's round trip (``decision_make``, committed, enqueued);
- confirm -> order at the paper venue: from sending ``order_confirm`` to the order row read
  back with the paper broker's id (polled every 0.5 ms): the execution queue included.

Floor in the same run: ``orders_open`` (HTTP, bearer check, audit row, one read).
Targets (issue 15): preview p99 < 20 ms, confirm -> order at the paper venue p99 < 30 ms.
Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import REPO, Worker, bench_database, database_name, redis_db_url, row  # noqa: E402

sys.path.insert(0, str(REPO))

WARMUP = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(n: int) -> tuple[str, list[str]]:
    """A paper account with room for every order, ``n`` instruments with a fresh bar, an agent."""
    from django.utils import timezone

    from apps.marketdata.models import Bar
    from apps.marketdata.services import instrument_get_or_create
    from apps.mcp.models import Scope
    from apps.mcp.services import mcp_agent_create
    from apps.risk.models import RiskLimit
    from apps.trading.services.accounts import account_get_or_create

    account = account_get_or_create(name="paper", starting_cash=Decimal(10_000_000))
    RiskLimit.objects.update_or_create(
        account=account,
        defaults={
            "max_order_notional": Decimal(100_000),
            "max_position_notional": Decimal(100_000),
            "max_gross_exposure": Decimal(1_000_000_000),
            "max_open_positions": 100_000,
        },
    )
    ts = timezone.now().replace(second=0, microsecond=0)
    symbols = []
    for i in range(n):
        inst = instrument_get_or_create(symbol=f"B{i}-USD")
        price = Decimal(100)
        Bar.objects.create(
            instrument=inst, timeframe="1m", ts=ts, open=price, high=price, low=price,
            close=price, volume=Decimal(1),
        )  # fmt: skip
        symbols.append(inst.symbol)
    _, token = mcp_agent_create(
        name="bench", account=account, scopes=list(Scope.values), actor="bench",
        max_orders_per_minute=1_000_000,
    )  # fmt: skip
    return token, symbols


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mcp_server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"mcp_server not ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


async def run(url: str, token: str, symbols: list[str]) -> dict[str, list[float]]:
    import httpx2
    from asgiref.sync import sync_to_async
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from apps.trading.models import Order

    def at_venue(client_order_id: str) -> bool:
        return Order.objects.filter(
            client_order_id=client_order_id, broker_order_id__isnull=False
        ).exists()

    poll = sync_to_async(at_venue)
    out: dict[str, list[float]] = {"floor": [], "preview": [], "confirm": [], "to_venue": []}
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        for i in range(WARMUP + 100):
            t0 = time.perf_counter()
            await client.call_tool("orders_open", {})
            if i >= WARMUP:
                out["floor"].append((time.perf_counter() - t0) * 1000)
        for i, symbol in enumerate(symbols):
            t0 = time.perf_counter()
            preview = await client.call_tool(
                "order_preview", {"instrument": symbol, "side": "buy", "quantity": "1"}
            )
            t1 = time.perf_counter()
            body = preview.structured_content or {}
            if body.get("verdict") != "approved":
                print(f"  !! {symbol}: preview {body.get('verdict')}: {body.get('reason')}")
                continue
            t2 = time.perf_counter()
            confirm = await client.call_tool(
                "order_confirm", {"confirmation_token": body["confirmation_token"]}
            )
            t3 = time.perf_counter()
            sent = confirm.structured_content or {}
            if sent.get("verdict") != "sent":
                print(f"  !! {symbol}: confirm {sent.get('verdict')}: {sent.get('reason')}")
                continue
            deadline = time.monotonic() + 10
            while not await poll(sent["client_order_id"]):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{sent['client_order_id']} not at the venue in 10 s")
                await asyncio.sleep(0.0005)
            t4 = time.perf_counter()
            if i >= WARMUP:
                out["preview"].append((t1 - t0) * 1000)
                out["confirm"].append((t3 - t2) * 1000)
                out["to_venue"].append((t4 - t2) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200, help="orders (one instrument each)")
    args = parser.parse_args()

    os.environ.setdefault("ENVIRONMENT", "test")
    redis_url = redis_db_url(
        os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1",
        int(os.environ.get("BENCH_REDIS_DB", "12")),
    )
    os.environ.update(
        {
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "CHANNELS_REDIS_URL": redis_url,
            # Orders leave back to back: the account's per-minute guard would deny most.
            "RISK_CEILING_MAX_ORDERS_PER_MINUTE": os.environ.get(
                "RISK_CEILING_MAX_ORDERS_PER_MINUTE", "1000000"
            ),
            # The bench's own poll loop reads the order rows from the event loop's thread.
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
        }
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
    print(f"MCP bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with (
        bench_database("mcp") as bench_url,
        tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp,
    ):
        from tradebot.celery import app

        env = {**os.environ, "DATABASE_URL": bench_url, "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        token, symbols = setup(WARMUP + args.orders)
        print(f"Redis {redis_url}, database {database_name(bench_url)}")
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("execution")
        port = free_port()
        log = Path(tmp) / "mcp.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603
                [sys.executable, "manage.py", "mcp_server", "trading", "--transport", "http",
                 "--host", "127.0.0.1", "--port", str(port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        worker = Worker(env, Path(tmp) / "worker.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/.well-known/oauth-protected-resource/mcp", proc, log)
            worker.start(app)
            figures = asyncio.run(run(f"{base}/mcp", token, symbols))
        finally:
            worker.stop()
            proc.terminate()
            proc.wait(timeout=15)
    print(f"\ntrading MCP server over streamable HTTP on loopback; first {WARMUP} are warm-up")
    row("floor: orders_open (HTTP, bearer, audit)", figures["floor"])
    row("order_preview (target p99 < 20 ms)", figures["preview"])
    row("order_confirm (decided, committed, enqueued)", figures["confirm"])
    row("confirm -> at the paper venue (target p99 < 30 ms)", figures["to_venue"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
