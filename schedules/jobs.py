"""The job RQ's cron scheduler enqueues every minute (run_schedules --loop)."""

from __future__ import annotations

from django.conf import settings
from redis import Redis
from rq.cron import CronScheduler

from . import actions


def tick() -> int:
    """Fire the schedules due now; returns how many occurrences this tick claimed."""
    return len(actions.tick())


def scheduler(connection: Redis) -> CronScheduler:
    """RQ's cron scheduler, enqueueing `tick` on the resync queue each minute for the
    workers. Run as many as you like: each occurrence is claimed once (actions.fire)."""
    cron = CronScheduler(connection=connection)
    cron.register(tick, settings.RQ_QUEUE, cron="* * * * *", name="schedules.tick")
    return cron
