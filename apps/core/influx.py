"""Trading time series to InfluxDB (optional: on when INFLUXDB_URL is set).

What is written (measurement: fields; tags):

- ``equity``: equity, cash, realized_pnl, unrealized_pnl, fees, drawdown; account.
  (P&L lives here: realized, unrealized and fees at every mark.)
- ``position``: quantity, avg_price, last_price, market_value, unrealized_pnl; account,
  instrument (with ``write_equity(..., positions=...)`` or ``write_positions``).
- ``fill``: quantity, price, fee, realized_pnl, slippage_bps (against the order's
  decision price), order_latency_s (order sent -> this fill booked); account, instrument, side.
- ``latency``: seconds; kind (e.g. ``decision``, ``order``), account, instrument.

Never blocking trading: the ``write_*`` functions only turn rows into plain tuples and
``put_nowait`` them on a bounded queue (INFLUXDB_BUFFER_POINTS); a daemon thread per
process takes batches (INFLUXDB_BATCH_SIZE, or whatever arrived within
INFLUXDB_FLUSH_INTERVAL seconds) and writes them through influxdb-client's synchronous
write API with a short timeout and no retries. A dead or slow InfluxDB costs a counted
error and a log line (at most one a minute) and the batch; a full buffer drops the new
points and counts them. The counters (``influxdb_write_errors_total``,
``influxdb_points_dropped_total``, ``influxdb_points_written_total``) are summed over
processes in Redis (apps.core.metrics_store) by the writer thread, never by the caller.

Hook it after commit, so a rolled-back mark is never written:
``transaction.on_commit(lambda: influx.write_equity(snap))``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.core import metrics_store

logger = logging.getLogger(__name__)

ERRORS = "influxdb_write_errors_total"
DROPPED = "influxdb_points_dropped_total"
WRITTEN = "influxdb_points_written_total"
COUNTERS = (
    (ERRORS, "Failed InfluxDB writes (each loses its batch)"),
    (DROPPED, "Trading points not written to InfluxDB (buffer full or write failed)"),
    (WRITTEN, "Trading points written to InfluxDB"),
)
LOG_EVERY_SECONDS = 60.0

# (measurement, tags, fields, time): built in the caller's thread from plain values.
PointTuple = tuple[str, dict[str, str], dict[str, float], datetime]


class InfluxWriter:
    """One background writer: a bounded buffer and a daemon thread (per process)."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        org: str,
        bucket: str,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        buffer_points: int = 10_000,
        timeout_ms: int = 2_000,
    ) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.bucket, self.org = bucket, org
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._client = InfluxDBClient(
            url=url, token=token, org=org, timeout=timeout_ms, retries=False
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._queue: queue.Queue[PointTuple] = queue.Queue(maxsize=buffer_points)
        self._lock = threading.Lock()
        self._dropped = 0  # by callers (buffer full), handed to Redis by the thread
        self._last_log = 0.0
        self._suppressed = 0
        self._thread = threading.Thread(target=self._run, name="influxdb-writer", daemon=True)
        self._thread.start()

    # --- the caller's side: never waits ------------------------------------------------------

    def submit(self, points: Iterable[PointTuple]) -> None:
        for point in points:
            try:
                self._queue.put_nowait(point)
            except queue.Full:
                with self._lock:
                    self._dropped += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted point was written or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                # unfinished_tasks: points put and not yet written (or given up) and counted.
                idle = self._queue.unfinished_tasks == 0 and self._dropped == 0
            if idle:
                return True
            time.sleep(0.01)
        return False

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._take()
            counts = metrics_store.Batch()
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                counts.inc(DROPPED, (), dropped)
            if batch:
                if self._write(batch):
                    counts.inc(WRITTEN, (), len(batch))
                else:
                    counts.inc(ERRORS, (), 1)
                    counts.inc(DROPPED, (), len(batch))
            counts.send()
            for _ in batch:
                self._queue.task_done()

    def _take(self) -> list[PointTuple]:
        try:
            first = self._queue.get(timeout=self.flush_interval)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[PointTuple]) -> bool:
        from influxdb_client import Point

        records = []
        for measurement, tags, fields, ts in batch:
            point = Point(measurement).time(ts)
            for key, value in tags.items():
                point = point.tag(key, value)
            for key, value in fields.items():
                point = point.field(key, value)
            records.append(point)
        try:
            self._write_api.write(bucket=self.bucket, org=self.org, record=records)
        except Exception as exc:  # any failure of the sink: count it, log it, go on
            self._log_failure(exc, len(batch))
            return False
        return True

    def _log_failure(self, exc: Exception, points: int) -> None:
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY_SECONDS and self._last_log:
            self._suppressed += 1
            return
        more = (
            f" ({self._suppressed} more failures since the last report)" if self._suppressed else ""
        )
        logger.warning(
            "influxdb write failed, %d points dropped%s: %s",
            points,
            more,
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        self._last_log, self._suppressed = now, 0


_writer: InfluxWriter | None = None
_writer_pid: int | None = None
_writer_lock = threading.Lock()


def writer() -> InfluxWriter | None:
    """This process's writer, or None when INFLUXDB_URL is not set (a forked child starts
    its own: the parent's thread did not survive the fork)."""
    global _writer, _writer_pid
    if not settings.INFLUXDB_URL:
        return None
    pid = os.getpid()
    if _writer is not None and _writer_pid == pid:
        return _writer
    with _writer_lock:
        if _writer is None or _writer_pid != pid:
            _writer = InfluxWriter(
                url=settings.INFLUXDB_URL,
                token=settings.INFLUXDB_TOKEN,
                org=settings.INFLUXDB_ORG,
                bucket=settings.INFLUXDB_BUCKET,
                batch_size=settings.INFLUXDB_BATCH_SIZE,
                flush_interval=settings.INFLUXDB_FLUSH_INTERVAL,
                buffer_points=settings.INFLUXDB_BUFFER_POINTS,
                timeout_ms=settings.INFLUXDB_TIMEOUT_MS,
            )
            _writer_pid = pid
    return _writer


def reset() -> None:
    """Forget this process's writer (tests change INFLUXDB_URL; its thread idles on)."""
    global _writer, _writer_pid
    with _writer_lock:
        _writer, _writer_pid = None, None


def flush(timeout: float = 10.0) -> bool:
    w = _writer if _writer_pid == os.getpid() else None
    return True if w is None else w.flush(timeout)


def _f(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def _fields(**values: Decimal | float | int | None) -> dict[str, float]:
    return {k: f for k, v in values.items() if (f := _f(v)) is not None}


def _submit(points: list[PointTuple]) -> None:
    w = writer()
    if w is not None:
        w.submit(points)


# --- what the trading code calls (after commit) ---------------------------------------------


def write_equity(snapshot: Any, *, positions: Iterable[Any] = ()) -> None:
    """An EquitySnapshot (and optionally the account's Position rows marked with it)."""
    if not settings.INFLUXDB_URL:
        return
    account = str(snapshot.account.name)
    points: list[PointTuple] = [
        (
            "equity",
            {"account": account},
            _fields(
                equity=snapshot.equity,
                cash=snapshot.cash,
                realized_pnl=snapshot.realized_pnl,
                unrealized_pnl=snapshot.unrealized_pnl,
                fees=snapshot.fees,
                drawdown=snapshot.drawdown,
            ),
            snapshot.ts,
        )
    ]
    points += _position_points(account, positions, snapshot.ts)
    _submit(points)


def write_positions(*, account: str, positions: Iterable[Any], ts: datetime) -> None:
    """Position rows (with ``instrument`` loaded) of one account at ``ts``."""
    if settings.INFLUXDB_URL:
        _submit(_position_points(account, positions, ts))


def _position_points(account: str, positions: Iterable[Any], ts: datetime) -> list[PointTuple]:
    points: list[PointTuple] = []
    for p in positions:
        mark = p.last_price if p.last_price is not None else p.avg_price
        points.append(
            (
                "position",
                {"account": account, "instrument": str(p.instrument.symbol)},
                _fields(
                    quantity=p.quantity,
                    avg_price=p.avg_price,
                    last_price=p.last_price,
                    market_value=mark * p.quantity,
                    unrealized_pnl=p.unrealized_pnl,
                ),
                ts,
            )
        )
    return points


def write_fill(fill: Any, order: Any) -> None:
    """A booked Fill row and its Order (instrument and account loaded)."""
    if not settings.INFLUXDB_URL:
        return
    slippage = None
    if order.decision_price:
        sign = 1 if fill.side == "buy" else -1
        slippage = sign * (fill.price - order.decision_price) / order.decision_price * 10_000
    latency = None
    if order.submitted_at is not None and fill.created_at is not None:
        latency = (fill.created_at - order.submitted_at).total_seconds()
    _submit(
        [
            (
                "fill",
                {
                    "account": str(order.account.name),
                    "instrument": str(order.instrument.symbol),
                    "side": str(fill.side),
                },
                _fields(
                    quantity=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    realized_pnl=fill.realized_pnl,
                    slippage_bps=slippage,
                    order_latency_s=latency,
                ),
                fill.ts,
            )
        ]
    )


def write_latency(
    *,
    kind: str,
    seconds: float,
    ts: datetime,
    account: str = "",
    instrument: str = "",
) -> None:
    """One latency sample (e.g. kind="decision": bar in -> order intent; kind="order":
    intent -> sent to the broker)."""
    if settings.INFLUXDB_URL:
        tags = {"kind": kind, "account": account, "instrument": instrument}
        _submit([("latency", {k: v for k, v in tags.items() if v}, {"seconds": seconds}, ts)])
