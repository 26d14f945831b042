"""Celery interfaces of trading: fetch by id, call the service, decide retry.

``order_send`` is safe to run twice (the service sends only an INITIALIZED order,
under its row lock), so it takes late acks: a worker that dies mid-task gets the
message redelivered and the redelivery sends nothing twice. No ETA/countdown on
order tasks (a delayed order is a different decision), and an expiry so a
backlogged queue never sends stale orders.
"""

from __future__ import annotations

from celery import shared_task

ORDER_TASK_EXPIRES_SECONDS = 60


@shared_task(
    name="trading.order_send",
    acks_late=True,
    reject_on_worker_lost=True,
    expires=ORDER_TASK_EXPIRES_SECONDS,
    ignore_result=True,
    # No task-received/task-started events from the worker (CELERY_WORKER_SEND_TASK_EVENTS):
    # each is a Redis publish made before the task body runs, on the path from a decision
    # to the broker. The send is in the audit trail (order.sent) and its wait and run
    # times in the task histograms (apps.ops.celery_metrics, from signals, unaffected).
    send_events=False,
)
def order_send(order_id: int) -> str:
    from apps.trading.services.orders import order_send as order_send_service

    order = order_send_service(order_id=order_id)
    return order.status
