"""What RQ workers run. Jobs are thin: the engine and the actions do the work."""

from __future__ import annotations

import logging
import os
import time
import traceback

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from rq.exceptions import StopRequested
from rq.worker import SimpleWorker

from history.models import DISBatchHistory
from resync import actions, engine, rights

log = logging.getLogger(__name__)

# What a cut or lost database connection raises (pg_terminate_backend, a
# restarted server, a network drop): the step was interrupted, not wrong.
DATABASE_LOST = (OperationalError, InterfaceError)

# Set by a job that queued its step again: the worker runs recovery as soon as
# the job has ended, and so enqueues it again at once (see ResyncWorker).
_recover_after_job = False


def run_step_job(step_id: int) -> None:
    global _recover_after_job
    worker = actions.worker_name()
    step = engine.claim(step_id, worker)
    if step is None:
        log.info("step %s is not queued any more; skipping", step_id)
        return
    try:
        denied = rights.still_allowed(
            step.request.requested_by, step.district, step.request.level, step.sync_object.name
        )
        if denied:
            rights.log_refusal(
                step.request.requested_by, "job", f"step {step_id} ({step.sync_object.name}): {denied}"
            )
            actions.do_finish_step(step, f"Refused at run time: {denied}")
            return
        actions.push_step(step)
        engine.run_step(step, on_progress=actions.push_step)
        actions.do_finish_step(step)
    except DATABASE_LOST as e:
        # The step's state transaction died with its connection: nothing it did
        # counts. It must not stay "running" on this live worker (its pid alive,
        # recovery would wait for its heartbeat to go stale), and this worker's
        # own connections are dead: drop them, so the history write (and every
        # later job) gets a fresh one.
        log.warning("step %s lost its database connection: %s", step_id, e)
        reset_connections()
        if actions.do_interrupt_step(step_id, worker, f"{type(e).__name__}: {e}"):
            _recover_after_job = True
    except Exception as e:
        # A failed step does not stop the batch: it is marked failed and its
        # children still run (their orphaned records will error).
        log.exception("step %s failed", step_id)
        reset_connections()
        step = DISBatchHistory.objects.select_related("request", "sync_object").filter(pk=step_id).first()
        if step is not None and not step.finished:
            actions.do_finish_step(step, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")


def reset_connections() -> None:
    """Close this thread's database connections that are unusable or obsolete, on every
    alias (default and state), as Django does around each request. Connections here
    live no longer than a job (CONN_MAX_AGE 0), so each job starts on fresh ones."""
    close_old_connections()


class ResyncWorker(SimpleWorker):
    """An RQ worker that recovers what dead workers, lost jobs and lost wake-ups left
    (actions.recover): when it starts, then every RESYNC_RECOVER_EVERY seconds, idle
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
        reset_connections()
        return super().work(*args, **kwargs)

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
            super().run_maintenance_tasks()
        self.recover()

    def recover(self) -> None:
        """Run actions.recover; a failure (the database down) is logged, never the
        end of the worker: RQ's loop quits on any exception, and the next check
        tries again."""
        self._recovered_at = time.monotonic()
        reset_connections()
        try:
            actions.recover()
        except StopRequested:  # SIGTERM while idle: RQ's warm shutdown, not a failure
            raise
        except Exception:
            log.exception("recovery failed; the next check in %ss tries again", settings.RESYNC_RECOVER_EVERY)
        finally:
            reset_connections()

    def execute_job(self, job, queue):
        reset_connections()
        actions.job_running_here = True
        try:
            return super().execute_job(job, queue)
        finally:
            actions.job_running_here = False
            self._after_job()

    def _after_job(self) -> None:
        """Fresh connections for what comes next, and recovery at once when the job
        queued its step again or ended without ending its step or run (it raised on a
        cut connection before it could write the failure): it would otherwise stay
        "running" on this live worker until its heartbeat went stale."""
        global _recover_after_job
        reset_connections()
        try:
            orphaned = _recover_after_job or actions.orphaned_here()
        except Exception:
            log.exception("could not check for what the last job left running")
            orphaned = True
        _recover_after_job = False
        if orphaned:
            self.recover()


def yield_cpu(niceness: int) -> None:
    """Lower this process's CPU priority to `niceness`, never raise it (that needs root)."""
    if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
