"""The job RQ's cron scheduler enqueues every minute (run_schedules --loop)."""

from __future__ import annotations

from . import actions


def tick() -> int:
    """Fire the schedules due now; returns how many occurrences this tick claimed."""
    return len(actions.tick())
