"""Move on what dead workers, lost RQ jobs and lost wake-ups left behind.

Runs when a worker starts, every RESYNC_RECOVER_EVERY seconds on each worker
(worker.worker.ResyncWorker), and from the resync_recover command. Every step
is idempotent and claims what it touches under a lock, so any number of
workers may run it at once.
"""

from __future__ import annotations

import itertools
import logging

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from history.models import DISBatchHistory, StepStatus
from resync.models import District, ResyncRequest
from runner import jobs, lifecycle

log = logging.getLogger(__name__)


def recover_stale_steps() -> list[int]:
    """Re-queue steps no worker will finish: running ones whose worker died (killed, lost),
    failed after MAX_ATTEMPTS; queued ones whose RQ job was lost (jobs.requeue_lost).

    Returns the ids of the steps it touched.
    """
    now = timezone.now()
    touched = []
    running = DISBatchHistory.objects.filter(status=StepStatus.RUNNING).select_related("request")
    dead = [
        s
        for s in running.order_by("request_id", "layer", "id")
        if jobs.worker_dead(s.worker, s.heartbeat_at, now)
    ]
    # The steps of one request its dead worker ran go back together, in one transaction:
    # a one-job request's batch may span layers (lifecycle.span), and its job, enqueued
    # once the first went back, could otherwise run a child before its parent.
    for _request, steps in itertools.groupby(dead, key=lambda s: (s.request_id, s.worker)):
        with transaction.atomic():
            for step in steps:
                touched += _requeue_dead(step, now)
    queued = DISBatchHistory.objects.filter(status=StepStatus.QUEUED)
    # A one-job request's queued steps have no job of their own: its job is what may be lost.
    for request_id in set(queued.filter(request__one_job=True).values_list("request_id", flat=True)):
        lifecycle.queue_request(request_id)  # no transaction here: at once
    own_jobs = queued.filter(request__one_job=False)
    return touched + jobs.requeue_lost(own_jobs, lifecycle.run_step, lifecycle.step_job_id, now)


def _requeue_dead(step: DISBatchHistory, now) -> list[int]:
    """Queue again a step whose worker died, or fail it after MAX_ATTEMPTS; [its id] if
    this recoverer did."""
    running = DISBatchHistory.objects.filter(pk=step.pk, status=StepStatus.RUNNING, worker=step.worker)
    if step.attempts < jobs.MAX_ATTEMPTS:
        with transaction.atomic():
            if not running.update(status=StepStatus.QUEUED, worker="", queued_at=now):
                return []
            if step.request.one_job:  # its request's job died with the worker
                lifecycle.queue_request(step.request_id, dead_worker=step.worker)
            else:
                jobs.requeue_job(lifecycle.run_step, step.pk, lifecycle.step_job_id(step.pk))
            log.warning("re-queued step %s: its worker %s died", step.pk, step.worker)
            return [step.pk]
    # Clearing the worker claims the step, so two recoverers never both fail it.
    if running.update(worker=""):
        step.refresh_from_db()
        lifecycle.fail_step(step, f"The worker died {step.attempts} times while running this step.")
        log.warning("failed step %s: its worker died %s times", step.pk, step.attempts)
        return [step.pk]
    return []


def recover_requests() -> list[int]:
    """Move on the requests nothing else will move; returns their ids.

    - A running request none of whose steps is queued or running: the end of its
      last step never advanced it (a step row deleted underneath it, a worker cut
      off between a step's end and its advance). Advancing is idempotent under
      the district's lock, so racing a worker that is about to do it is harmless.
    - A waiting request whose district and year run nothing: its wake-up was
      lost. The oldest one starts, as lifecycle.finish_request would have started it.
    """
    touched = []
    Status = ResyncRequest.Status
    moving = DISBatchHistory.objects.filter(
        request=OuterRef("pk"), status__in=[StepStatus.QUEUED, StepStatus.RUNNING]
    )
    stuck = ResyncRequest.objects.filter(status=Status.RUNNING).exclude(Exists(moving))
    # A one-job request is moved on by its job alone (advance_locked would only enqueue it
    # again if lost): asked of RQ at once, with no lock. A state request's small districts
    # all look stuck while they wait for their group's job, and advancing each under its
    # district's lock cost a worker 6% of its time during a state resync (issue 16).
    for pk in stuck.filter(one_job=True).values_list("pk", flat=True):
        lifecycle.queue_request(pk)  # no transaction here: at once
    for pk, layer in stuck.filter(one_job=False).values_list("pk", "current_layer"):
        with transaction.atomic():
            lifecycle.advance_locked(pk)
            after = ResyncRequest.objects.filter(pk=pk).values_list("status", "current_layer").get()
        if after != (Status.RUNNING, layer):
            touched.append(pk)
            log.warning("advanced request %s: nothing was queued or running for it", pk)
    running = ResyncRequest.objects.filter(
        district=OuterRef("district"), school_year=OuterRef("school_year"), status=Status.RUNNING
    )
    idle = ResyncRequest.objects.filter(status=Status.WAITING).exclude(Exists(running))
    for district_id, year in set(idle.values_list("district_id", "school_year")):
        with transaction.atomic():
            # Under the lock do_request_resync and finish_request take: the decision holds.
            District.objects.select_for_update().only("pk").get(pk=district_id)
            running_now = ResyncRequest.objects.filter(
                district_id=district_id, school_year=year, status=Status.RUNNING
            )
            if running_now.exists():
                continue
            started = lifecycle.start_next(district_id, year)
            if started is not None:
                touched.append(started.pk)
                log.warning("started request %s: it waited with nothing running", started.pk)
    return touched
