"""Crash faults with a real Celery execution worker, the real Kraken client and its fake.

- kill -9 of the worker between the send and the broker's ack, then a restart;
- Redis killed (losing everything it held) and restarted mid-run;
- PostgreSQL unreachable for 10 s while a send is delivered.

Each ends with exactly one broker order per client order id and our books equal to the
broker's after reconciliation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from apps.brokers.services.reconcile import reconcile_account
from apps.marketdata.models import Instrument
from apps.strategies.domain.base import Signal, SignalAction
from apps.trading.models import Order
from apps.trading.services.decisions import decision_make
from apps.trading.services.outbox import orders_outbox_sweep
from tests.brokers.conftest import broker_orders, kraken_account, kraken_env
from tests.fakes.redis_server import RedisServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.conftest import (
    CeleryWorker,
    database_url,
    purge_execution_queue,
    redis_url,
    wait_for,
)
from tests.trading.factories import T0

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VISIBILITY_SECONDS = 3


def _decide(account: Any, symbol: str = "BTC-USD", price: str = "20000") -> Order:
    outcome = decision_make(
        account=account,
        signal=Signal(
            instrument=symbol, ts=T0, action=SignalAction.ENTER_LONG, price=Decimal(price),
            inputs={"test": "fault"},
        ),
        strategy="sma_cross",
        strategy_params={"fast": 10, "slow": 30},
        stake=Decimal("1000"),
        reference_price=Decimal(price), reference_ts=T0,
    )  # fmt: skip
    assert outcome.order is not None
    return outcome.order


def _status(order: Order) -> str:
    order.refresh_from_db()
    return order.status


@contextlib.contextmanager
def _worker(kraken: Any, **env: str) -> Iterator[CeleryWorker]:
    base = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": redis_url(),
        "PYTHONUNBUFFERED": "1",
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS),
        **kraken_env(kraken),
        **env,
    }
    base.pop("DJANGO_SETTINGS_MODULE", None)
    with tempfile.TemporaryDirectory(prefix="tradebot-fault-") as tmp:
        worker = CeleryWorker(base, Path(tmp))
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()


@contextlib.contextmanager
def _publish_to(url: str) -> Iterator[None]:
    """This process's Celery app publishes to ``url`` (a private Redis) for the block."""
    from tradebot.celery import app

    def reset() -> None:
        # As Celery does after a fork; kombu keeps one pool per URL, shared: never close it.
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.broker_url = url
    reset()
    try:
        yield
    finally:
        app.conf.broker_url = previous
        reset()


def test_worker_killed_between_send_and_ack_then_one_broker_order_after_restart(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    account, _ = kraken_account()
    purge_execution_queue()
    with _worker(kraken) as worker:
        kraken.hold_next("AddOrder")  # Kraken records the order; the answer never comes
        order = _decide(account)
        wait_for(lambda: kraken.add_order_calls == 1, what="the order at Kraken", worker=worker)
        assert _status(order) == "submitted"  # recorded as sent BEFORE the broker call

        worker.kill()
        time.sleep(VISIBILITY_SECONDS + 0.5)
        worker.start()
        from apps.trading.tasks import order_send

        redelivery = order_send.delay(order_id=order.pk)  # the same message, delivered again
        wait_for(
            lambda: f"order_send[{redelivery.id}] succeeded" in worker.log_tail(400),
            what="the redelivered send to finish",
            worker=worker,
        )
        assert f"order_send[{redelivery.id}] succeeded" in worker.log_tail(400)
        assert "'submitted'" in worker.log_tail(400)  # it found the order in flight: no resend
        assert kraken.add_order_calls == 1

    run = reconcile_account(account=account, trigger="command")

    [at_kraken] = broker_orders(kraken, order)
    assert kraken.add_order_calls == 1
    assert run.outcome == "clean"
    order.refresh_from_db()
    assert (order.status, order.broker_order_id) == ("accepted", at_kraken["txid"])


def test_redis_killed_and_restarted_mid_run_then_no_order_lost_none_sent_twice(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    account, _ = kraken_account()
    Instrument.objects.create(
        symbol="ETH-USD", base="ETH", quote="USD", tick_size=Decimal("0.01"),
        lot_size=Decimal("0.00000001"),
    )  # fmt: skip
    redis = RedisServer()
    redis.start()
    try:
        with _publish_to(redis.url), _worker(kraken, REDIS_URL=redis.url) as worker:
            first = _decide(account)
            wait_for(lambda: _status(first) == "accepted", what="the first send", worker=worker)

            redis.stop()  # a crash: the queue's contents are gone
            second = _decide(account, symbol="ETH-USD", price="1500")
            assert _status(second) == "initialized"  # recorded, though not enqueued
            redis.start()

            swept = orders_outbox_sweep(now=timezone.now() + timezone.timedelta(seconds=10))
            assert swept.requeued == (second.client_order_id,)
            wait_for(lambda: _status(second) == "accepted", what="the swept send", worker=worker)
            orders_outbox_sweep(
                now=timezone.now() + timezone.timedelta(seconds=10)
            )  # again: nothing
            time.sleep(0.5)
    finally:
        redis.close()

    assert kraken.add_order_calls == 2
    assert len(broker_orders(kraken, first)) == 1
    assert len(broker_orders(kraken, second)) == 1
    assert reconcile_account(account=account, trigger="command").outcome == "clean"


def test_postgres_unreachable_for_10s_then_nothing_sent_unrecorded_and_sent_once_after(
    kraken_settings,
) -> None:
    kraken = kraken_settings
    account, _ = kraken_account()
    db = settings.DATABASES["default"]
    purge_execution_queue()
    with TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)) as proxy:
        via_proxy = database_url({**db, "HOST": "127.0.0.1", "PORT": proxy.port})
        with _worker(kraken, DATABASE_URL=via_proxy) as worker:
            proxy.cut()  # the worker cannot reach PostgreSQL
            cut_at = time.monotonic()
            order = _decide(account)  # this process still can: the order is recorded
            wait_for(
                lambda: "order_send" in worker.log_tail(200) and "raised" in worker.log_tail(200),
                what="the send failing on the database",
                worker=worker,
            )
            time.sleep(max(0.0, 10 - (time.monotonic() - cut_at)))
            assert kraken.add_order_calls == 0  # never sent without being recorded first
            assert _status(order) == "initialized"

            proxy.restore()
            orders_outbox_sweep(now=timezone.now() + timezone.timedelta(seconds=10))
            wait_for(lambda: _status(order) == "accepted", what="the send after", worker=worker)

    [call] = kraken.calls_to("AddOrder")
    order.refresh_from_db()
    assert order.submitted_at.timestamp() <= call.at  # recorded, then sent
    assert len(broker_orders(kraken, order)) == 1
    assert reconcile_account(account=account, trigger="command").outcome == "clean"
