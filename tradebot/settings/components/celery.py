"""Celery: Redis broker, JSON only, named queues, time limits everywhere."""

from kombu import Queue

from apps.core.queues import CeleryQueue
from tradebot.env import env, env_number

_REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_REDIS_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_DEFAULT_QUEUE = CeleryQueue.DEFAULT.value
CELERY_TASK_QUEUES = tuple(Queue(q.value) for q in CeleryQueue)
# Routing by task name (the per-task `queue` attribute is deprecated in Celery 5).
CELERY_TASK_ROUTES = {
    "trading.order_send": {"queue": CeleryQueue.EXECUTION.value},
    # The broker session lives in the execution worker (one sender per account).
    "brokers.sync": {"queue": CeleryQueue.EXECUTION.value},
    "brokers.reconcile": {"queue": CeleryQueue.EXECUTION.value},
    "brokers.outbox_sweep": {"queue": CeleryQueue.RECONCILIATION.value},
    "ml.retrain": {"queue": CeleryQueue.ML.value},
    # The market-data watchdog (apps/engine/watchdog.py): may reconcile before resuming.
    "engine.*": {"queue": CeleryQueue.RECONCILIATION.value},
    # Backups, vacuum, log rotation, restore tests, checklists, beat heartbeat (apps/ops).
    "ops.*": {"queue": CeleryQueue.MAINTENANCE.value},
    # Notification deliveries, the stuck-delivery sweeper, the watchdog check
    # (apps/notifications): short tasks, consumed by the "worker" process.
    "notifications.*": {"queue": CeleryQueue.DEFAULT.value},
}
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# Late acks are opt-in per task (only idempotent tasks take them): see apps/trading/tasks.py.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep the worker's database connection across tasks (Celery's Django fixup otherwise
# closes it after every task, adding a fresh connection to every order send).
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers a message nobody acknowledged (a worker killed mid-task) after this long.
# Order tasks expire after 60 s, so a redelivered send past that is dropped, and the
# order it carried is settled by a status query or reconciliation instead.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_number("CELERY_VISIBILITY_TIMEOUT_SECONDS", 600, int, minimum=1)
}
# A publish to a dead Redis fails fast (the outbox sweep retries) instead of blocking.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_SEND_TASK_EVENTS = True
# No "task-sent" event: it was a second Redis command (PUBLISH) in every publish, on the
# path from a decision to the broker, and nothing consumes it (the task wait-time
# histogram stamps its own header in before_task_publish: apps.ops.celery_metrics).
CELERY_TASK_SEND_SENT_EVENT = False
