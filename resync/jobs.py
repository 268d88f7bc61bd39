"""What RQ workers run. Jobs are thin: the engine and the actions do the work."""

from __future__ import annotations

import logging
import os
import traceback

from django.conf import settings
from django.db import close_old_connections
from rq.worker import SimpleWorker

from history.models import DISBatchHistory
from resync import actions, engine, rights

log = logging.getLogger(__name__)


def run_step_job(step_id: int) -> None:
    step = engine.claim(step_id, actions.worker_name())
    if step is None:
        log.info("step %s is not queued any more; skipping", step_id)
        return
    denied = rights.still_allowed(
        step.request.requested_by, step.district, step.request.level, step.sync_object.name
    )
    if denied:
        actions.do_finish_step(step, f"Refused at run time: {denied}")
        return
    actions.push_step(step)
    try:
        engine.run_step(step, on_progress=actions.push_step)
    except Exception as e:
        # A failed step does not stop the batch: it is marked failed and its
        # children still run (their orphaned records will error).
        log.exception("step %s failed", step_id)
        step = DISBatchHistory.objects.select_related("request", "sync_object").get(pk=step_id)
        actions.do_finish_step(step, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
        return
    actions.do_finish_step(step)


class ResyncWorker(SimpleWorker):
    """An RQ worker that first recovers what dead workers and lost jobs left (actions.recover).

    SimpleWorker runs jobs in its own process: no fork, so no database
    connection is ever shared between parent and child.
    """

    def work(self, *args, **kwargs):
        yield_cpu(settings.RESYNC_WORKER_NICE)
        close_old_connections()
        actions.recover()
        return super().work(*args, **kwargs)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        actions.recover()


def yield_cpu(niceness: int) -> None:
    """Lower this process's CPU priority to `niceness`, never raise it (that needs root)."""
    if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
