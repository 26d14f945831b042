"""Pre-trade check latency: ``order_check`` in process (pure, no Django).

Usage::

    .venv/bin/python bench/risk_check.py [--n 200000]

Rows (n / p50 / p99 / max, each call timed alone with ``perf_counter_ns``):

- floor: a Python call of a function taking the same keyword arguments and returning a
  constant (the cost of timing and calling, nothing else);
- ``check_mode`` alone (one check, what ``order_send`` runs at send time);
- ``order_check`` with every limit set (8 checks: mode gate, order notional, position,
  gross exposure, open positions, price collar, order rate, duplicate guard), approved,
  with 20 recent orders in the duplicate window;
- the same, denied by two checks (the failing path);
- formatting the recorded numbers (``values`` + ``detail`` of every check), which the
  decision log does once per decision, off the check itself.

Target: p99 < 20 us for ``order_check``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.model.orders import OrderIntent  # noqa: E402
from apps.model.values import Side  # noqa: E402
from apps.risk.domain.checks import (  # noqa: E402
    RecentOrder,
    RiskContext,
    RiskLimits,
    check_mode,
    order_check,
)
from apps.risk.domain.modes import SystemMode  # noqa: E402

NOW = datetime(2020, 3, 12, 10, tzinfo=UTC)
LIMITS = RiskLimits(
    max_order_notional=Decimal(100_000),
    max_position_notional=Decimal(250_000),
    max_gross_exposure=Decimal(500_000),
    max_open_positions=50,
    price_collar_pct=Decimal("0.10"),
    max_orders_per_minute=60,
    duplicate_window_seconds=10,
)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def row(label: str, values: list[float]) -> None:
    v = sorted(values)
    print(
        f"  {label:<52} n={len(v):>7}  p50={percentile(v, 0.5):>7.2f} us  "
        f"p99={percentile(v, 0.99):>7.2f} us  max={v[-1]:>8.2f} us"
    )


def timed(fn, n: int) -> list[float]:  # noqa: ANN001
    ns = time.perf_counter_ns
    out = [0.0] * n
    for _ in range(min(n, 2000)):  # warm-up
        fn()
    gc.disable()
    try:
        for i in range(n):
            t0 = ns()
            fn()
            out[i] = (ns() - t0) / 1000
    finally:
        gc.enable()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000)
    n = parser.parse_args().n
    print(f"risk check bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, n={n}")

    recent = tuple(
        RecentOrder("ETH-USD", Side.BUY, Decimal("0.5") + i, NOW - timedelta(seconds=i / 2))
        for i in range(20)
    )
    ctx = RiskContext(
        mode=SystemMode.NORMAL,
        last_price=Decimal("7422.13"),
        position_quantity=Decimal("0.134725"),
        gross_exposure=Decimal("25000.50"),
        open_positions=3,
        orders_last_minute=4,
        recent_orders=recent,
        now=NOW,
    )
    intent = OrderIntent(
        instrument="BTC-USD",
        side=Side.BUY,
        quantity=Decimal("0.134735875"),
        decision_price=Decimal("7422.13"),
    )
    denied = OrderIntent(
        instrument="BTC-USD",
        side=Side.BUY,
        quantity=Decimal("20"),
        decision_price=Decimal("9000"),
    )

    def floor(*, intent: object, ctx: object, limits: object) -> bool:
        return True

    row(
        "floor: a call with the same arguments",
        timed(lambda: floor(intent=intent, ctx=ctx, limits=LIMITS), n),
    )
    row("check_mode alone (the send-time gate)", timed(lambda: check_mode(intent, ctx), n))
    approved = order_check(intent=intent, ctx=ctx, limits=LIMITS)
    assert approved.approved, approved.reason
    row(
        "order_check, 8 checks, approved",
        timed(lambda: order_check(intent=intent, ctx=ctx, limits=LIMITS), n),
    )
    failing = order_check(intent=denied, ctx=ctx, limits=LIMITS)
    row(
        f"order_check, denied ({len(failing.failed)} checks fail)",
        timed(lambda: order_check(intent=denied, ctx=ctx, limits=LIMITS), n),
    )
    row(
        "recording: values + detail of the 8 results",
        timed(lambda: [(c.values, c.detail) for c in approved.checks], max(n // 10, 1000)),
    )
    print(f"  denied reason: {failing.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
