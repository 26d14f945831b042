"""Celery: Redis broker, JSON only, named queues, time limits everywhere."""

from kombu import Queue

from apps.core.queues import CeleryQueue
from tradebot.env import env

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
    "ml.retrain": {"queue": CeleryQueue.ML.value},
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
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
