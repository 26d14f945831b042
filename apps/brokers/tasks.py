"""Celery interfaces of apps.brokers: fetch, call the service, return a summary.

``brokers.sync`` and ``brokers.reconcile`` run on the execution queue: the one process
that sends orders also owns the broker session (one sender per account, and IBKR's
client id is used by one process only). Both are idempotent and expire quickly, so a
backed-up beat never stampedes a broker.
"""

from __future__ import annotations

from celery import shared_task

SYNC_EXPIRES_SECONDS = 10


@shared_task(name="brokers.sync", ignore_result=True, expires=SYNC_EXPIRES_SECONDS)
def broker_sync_all() -> int:
    from apps.brokers.services.common import live_accounts
    from apps.brokers.services.connectivity import broker_sync

    accounts = live_accounts()
    for account in accounts:
        broker_sync(account=account)
    return len(accounts)


@shared_task(name="brokers.reconcile", ignore_result=True, expires=50)
def reconcile(trigger: str = "schedule", actor: str = "reconciliation") -> list[str]:
    from apps.brokers.services.reconcile import reconcile_all

    return [run.outcome for run in reconcile_all(trigger=trigger, actor=actor)]


@shared_task(name="brokers.outbox_sweep", ignore_result=True, expires=10)
def outbox_sweep() -> int:
    from apps.trading.services.outbox import orders_outbox_sweep

    result = orders_outbox_sweep()
    return len(result.requeued) + len(result.expired)
