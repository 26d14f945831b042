"""Celery task latency recorded in the worker processes, aggregated in Redis.

- ``celery_task_wait_seconds{task,queue}``: from the publish (a header stamped by
  ``before_task_publish`` in whichever process sent it) or the task's ETA, if later,
  to the start in the worker. Publisher and worker read the wall clock of their own
  hosts: on one server (compose) it is the same clock.
- ``celery_task_runtime_seconds{task,queue}``: from task_prerun to task_postrun.
- ``celery_tasks_total{task,queue,state}``: outcomes (success, failure, retry).

One pipelined Redis round trip per task, after the task ran (apps.core.metrics_store
says why Redis); a dead Redis costs a log line, never the task. Connected once per
process from OpsConfig.ready. Worker processes also start the CPU/RSS reporter
(apps.core.process_metrics) named after the worker (``execution@host``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from celery import signals

from apps.core import metrics_store
from apps.core.process_metrics import process_metrics_start

logger = logging.getLogger(__name__)

PUBLISHED_HEADER = "tb_published_at"
WAIT = "celery_task_wait_seconds"
RUNTIME = "celery_task_runtime_seconds"
OUTCOMES = "celery_tasks_total"
STATES = ("success", "failure", "retry")

_started: dict[str, tuple[float, float | None]] = {}


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None and PUBLISHED_HEADER not in headers:
        headers[PUBLISHED_HEADER] = time.time()


def _eta_ts(eta: Any) -> float | None:
    if not eta:
        return None
    try:
        return (eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))).timestamp()
    except ValueError:
        return None


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    now = time.time()
    request = task.request
    published = getattr(request, PUBLISHED_HEADER, None)
    wait = None
    if isinstance(published, int | float):
        due = max(float(published), _eta_ts(getattr(request, "eta", None)) or 0.0)
        wait = max(now - due, 0.0)
    _started[task_id] = (time.perf_counter(), wait)


def _queue_of(task: Any) -> str:
    info = getattr(task.request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("queue") or "eager")


def _on_postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    if task_id is None or task is None:
        return
    started = _started.pop(task_id, None)
    if started is None:
        return
    runtime = time.perf_counter() - started[0]
    labels = (task.name, _queue_of(task))
    batch = metrics_store.Batch()
    if started[1] is not None:
        batch.observe(WAIT, labels, started[1])
    batch.observe(RUNTIME, labels, runtime)
    batch.inc(OUTCOMES, (*labels, (state or "unknown").lower()))
    batch.send()


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    # The main process (it runs the tasks with the solo pool); sender: the consumer.
    process_metrics_start(process=str(getattr(sender, "hostname", None) or "celery"))


def _on_worker_process_init(sender: Any = None, **_: Any) -> None:
    # A prefork child: its own pid, the worker's name (sender: the hostname).
    process_metrics_start(process=str(sender or "celery"))


def connect() -> None:
    """Connect the handlers (weak=False: module-level functions, connected once)."""
    signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid="tb-metrics-pub")
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="tb-metrics-prerun")
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="tb-metrics-postrun")
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="tb-metrics-ready")
    signals.worker_process_init.connect(
        _on_worker_process_init, weak=False, dispatch_uid="tb-metrics-child"
    )
