"""Celery queues: one enum, so a typo in a queue name is an import error."""

from enum import StrEnum


class CeleryQueue(StrEnum):
    DEFAULT = "default"
    EXECUTION = "execution"  # order sending: latency-sensitive, one sender per account
    RECONCILIATION = "reconciliation"
    MAINTENANCE = "maintenance"
    ML = "ml"
