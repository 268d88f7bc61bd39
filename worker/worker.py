"""The RQ worker that runs StateSync's jobs, and the recovery every worker runs.

Jobs are functions (runner.lifecycle.run_step for steps, verification's
run_verification_job for verification runs); this module only runs them and
recovers what a dead worker, a lost job or a lost wake-up left behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from rq.exceptions import StopRequested
from rq.worker import SimpleWorker

from core import events
from history.models import DISBatchHistory, StepStatus
from runner import engine, jobs, lanes, recovery
from verification.actions import recover_stale_runs
from verification.models import VerificationRun

log = logging.getLogger(__name__)

# How often a worker busy with a job writes its RQ heartbeat (jobs.STALE_AFTER_SECONDS
# is when another host takes it for dead).
HEARTBEAT_SECONDS = 30


def recover() -> tuple[list[int], list[int], list[int]]:
    """Everything dead workers, lost jobs and lost wake-ups left behind:
    (steps, verification runs, requests) touched."""
    return recovery.recover_stale_steps(), recover_stale_runs(), recovery.recover_requests()


def orphaned_here() -> bool:
    """Does a step or verification run still name this process as its worker, now that
    its job has ended? (See jobs.job_running_here.)"""
    me = jobs.worker_name()
    return (
        DISBatchHistory.objects.filter(status=StepStatus.RUNNING, worker=me).exists()
        or VerificationRun.objects.filter(status=VerificationRun.Status.RUNNING, worker=me).exists()
    )


class ResyncWorker(SimpleWorker):
    """An RQ worker that recovers what dead workers, lost jobs and lost wake-ups left
    (recover): when it starts, then every RESYNC_RECOVER_EVERY seconds, idle
    or between jobs.

    RQ's own maintenance (cleaning its registries) runs every 10 minutes: far too
    late for a step whose job Redis lost. The recovery check is a few indexed
    queries and a Redis lookup per long-queued step, so every worker runs it.
    Around every job it resets the database connections, so a job never inherits
    one a previous job (or a cut connection) left unusable.

    SimpleWorker runs jobs in its own process: no fork, so no database
    connection is ever shared between parent and child.
    """

    _recovered_at: float | None = None

    def work(self, *args, **kwargs):
        yield_cpu(settings.RESYNC_WORKER_NICE)
        jobs.reset_connections()
        # While it works, its connections (database and channel layer) serve job after
        # job: opening them anew cost each step more than moving a small object.
        jobs.keep_connections = True
        events.start_loop()
        try:
            return super().work(*args, **kwargs)
        finally:
            jobs.keep_connections = False
            events.stop_loop()
            close_kept_connections()

    @property
    def dequeue_timeout(self) -> int:
        # An idle worker wakes this often to check, rather than RQ's worker_ttl - 15 s.
        return max(1, min(super().dequeue_timeout, settings.RESYNC_RECOVER_EVERY))

    @property
    def should_run_maintenance_tasks(self) -> bool:
        due = (
            self._recovered_at is None
            or time.monotonic() - self._recovered_at >= settings.RESYNC_RECOVER_EVERY
        )
        return due or super().should_run_maintenance_tasks

    def run_maintenance_tasks(self):
        if super().should_run_maintenance_tasks:
            # RQ's maintenance may fork its scheduler: a child must not inherit (and, on
            # its exit, close) the sockets of the connections this worker keeps.
            close_kept_connections()
            super().run_maintenance_tasks()
        self.recover()

    def recover(self) -> None:
        """Run recover(); a failure (the database down) is logged, never the
        end of the worker: RQ's loop quits on any exception, and the next check
        tries again."""
        self._recovered_at = time.monotonic()
        jobs.reset_connections()
        try:
            recover()
        except StopRequested:  # SIGTERM while idle: RQ's warm shutdown, not a failure
            raise
        except Exception:
            log.exception("recovery failed; the next check in %ss tries again", settings.RESYNC_RECOVER_EVERY)
        finally:
            jobs.reset_connections()

    def execute_job(self, job, queue):
        jobs.reset_connections()
        jobs.job_running_here = True
        # RQ's SimpleWorker writes its heartbeat only between jobs; a one-job request may
        # run for minutes, and a worker silent that long is taken for dead elsewhere.
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(beating,), name="rq-heartbeat", daemon=True)
        beat.start()
        try:
            return super().execute_job(job, queue)
        finally:
            beating.set()
            beat.join()
            jobs.job_running_here = False
            self._after_job()

    def _beat(self, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat(self.job_monitoring_interval + 60)
            except Exception:  # a missed beat is not the job's failure
                log.exception("could not write the worker's heartbeat")

    def _after_job(self) -> None:
        """Fresh connections for what comes next, and recovery at once when the job
        queued its step again or ended without ending its step or run (it raised on a
        cut connection before it could write the failure): it would otherwise stay
        "running" on this live worker until its heartbeat went stale."""
        jobs.reset_connections()
        try:
            orphaned = jobs.recover_after_job or orphaned_here()
        except Exception:
            log.exception("could not check for what the last job left running")
            orphaned = True
        jobs.recover_after_job = False
        if orphaned:
            self.recover()


def close_kept_connections() -> None:
    """Close every database connection the worker keeps between jobs: its own thread's,
    its state-side thread's and its lanes'."""
    jobs.close_connections()
    engine.close_state_connections()
    lanes.close()


def yield_cpu(niceness: int) -> None:
    """Lower this process's CPU priority to `niceness`, never raise it (that needs root)."""
    if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
