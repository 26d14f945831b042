"""Celery tasks of the engine's room (routed to the reconciliation queue)."""

from __future__ import annotations

from celery import shared_task

from apps.engine.watchdog import feeds_watch as feeds_watch_run


@shared_task(name="engine.feeds_watch", ignore_result=True, expires=10)
def feeds_watch() -> int:
    """The market-data watchdog from beat, so a dead engine is noticed too; returns late series."""
    return sum(
        1
        for age in feeds_watch_run()
        if age.watched and age.late_by is not None and age.late_by > 0
    )
