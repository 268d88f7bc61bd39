"""RQ jobs as the runner sees them: which worker process runs one, whether it is lost, how to enqueue it again.

Worker names (`host:pid`), whether a worker is dead, whether RQ lost a job, and
enqueueing a lost job again. Steps (runner.recovery) and verification runs
(verification.actions) are recovered through these same helpers.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import django_rq
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.db.models import Q, QuerySet
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import as_text
from rq.worker import Worker

log = logging.getLogger(__name__)

# A step (or verification run) whose worker died this many times is failed, not queued again.
MAX_ATTEMPTS = 3
# A worker on another host whose heartbeat has been silent this long is dead.
STALE_AFTER_SECONDS = 300

# True while this process runs an RQ job (worker.worker.ResyncWorker sets it).
# Between its jobs, a step or verification run that names this very process as
# its worker runs nowhere: the job that ran it ended (raised, its connection
# cut) without ending it, and recovery need not wait for a heartbeat to go stale.
job_running_here = False

# Set by a job that queued its step again (runner.lifecycle.interrupt_step): the
# worker runs recovery as soon as the job has ended, and so enqueues it again at
# once (see worker.worker.ResyncWorker).
recover_after_job = False

# What RQ will never run again. A job queued in no queue was removed from it.
_JOB_ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def worker_name() -> str:
    """This process as the rows it runs name it: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


# True in a worker process (worker.worker.ResyncWorker.work): its database connections
# are kept from one job to the next, and only closed when unusable (reset_connections).
# A new PostgreSQL connection costs a server process and about 5 ms; a step opened
# four (its own two aliases, its state side's thread, the worker's check after it).
keep_connections = False


def reset_connections() -> None:
    """Close this thread's database connections that are unusable, on every alias
    (default and state), so no job inherits one a previous job (or a cut connection)
    left broken. In a worker (keep_connections) a healthy one is kept for the next job;
    elsewhere every one is closed, as Django does around each request (CONN_MAX_AGE 0)."""
    if not keep_connections:
        close_old_connections()
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue
        # One SELECT 1: a connection the server cut while the worker idled is closed
        # here, not found broken by the next step's claim.
        if conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"] or not conn.is_usable():
            conn.close()
        else:
            conn.errors_occurred = False


def close_connections() -> None:
    """Close this thread's connections whatever their state (an idle worker holds none)."""
    connections.close_all()


def worker_dead(worker: str, heartbeat_at: datetime | None, now: datetime) -> bool:
    """Is the worker `host:pid` that runs something gone? On this host its pid says so at
    once (this very process, between its jobs: gone too); elsewhere its heartbeat has
    been silent for STALE_AFTER_SECONDS."""
    if worker == worker_name() and not job_running_here:
        return True
    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return heartbeat_at is None or (now - heartbeat_at).total_seconds() > STALE_AFTER_SECONDS


def listening_workers(queue_name: str) -> int:
    """How many live RQ workers listen on `queue_name` now. RQ keeps a killed worker in
    its registry until its key expires (minutes), so each is also asked worker_dead: on
    this host its pid, elsewhere its heartbeat."""
    now = datetime.now(UTC)
    workers = Worker.all(queue=django_rq.get_queue(queue_name))
    return sum(1 for w in workers if not worker_dead(f"{w.hostname}:{w.pid}", w.last_heartbeat, now))


def job_lost(job_id: str) -> bool:
    """Will RQ never run job `job_id`? True when Redis no longer has it, when it ended
    (failed, stopped, canceled, finished) and when it is queued but in no queue."""
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    status = queue.connection.hget(Job.key_for(job_id), "status")
    if status is None:
        return True
    status = JobStatus(as_text(status))
    if status == JobStatus.STARTED:
        # A killed worker leaves its job "started" until RQ's cleanup, minutes later.
        return started_by_dead_worker(queue.connection, job_id)
    if status == JobStatus.QUEUED:
        # A worker moves the job it takes to the intermediate queue and only then
        # marks it started: there it is being taken, not lost.
        taking = queue.connection.lpos(queue.intermediate_queue_key, job_id) is not None
        return queue.get_job_position(job_id) is None and not taking
    return status in _JOB_ENDED


def started_by_dead_worker(connection, job_id: str) -> bool:
    """Has the worker that started job `job_id` gone (no longer registered, or dead)?"""
    name = connection.hget(Job.key_for(job_id), "worker_name")
    if not name:
        return False  # being taken: RQ names the worker as it starts the job
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + as_text(name), connection=connection)
    if worker is None:
        return True
    if worker.hostname == socket.gethostname() and worker.pid:
        # On this host its pid says it (worker_dead would also read a heartbeat, which a
        # worker busy with one long job writes only every HEARTBEAT_SECONDS).
        me = f"{worker.hostname}:{worker.pid}" == worker_name()
        return (me and not job_running_here) or not _pid_alive(worker.pid)
    # Elsewhere its heartbeat: ResyncWorker keeps it fresh during a job too.
    return worker_dead(f"{worker.hostname}:{worker.pid}", worker.last_heartbeat, datetime.now(UTC))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def claim_enqueue(job_id: str, seconds: int) -> bool:
    """Claim the enqueueing of `job_id` for `seconds` (one atomic SET NX in Redis): False
    when another process enqueued it in that time, so a job is not enqueued twice."""
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    return bool(queue.connection.set(enqueue_claim_key(job_id), "1", nx=True, ex=max(1, seconds)))


def enqueue_claim_key(job_id: str) -> str:
    return f"statesync:{settings.RQ_QUEUE}:enqueued:{job_id}"


def requeue_job(func: Callable[[int], None], pk: int, job_id: str) -> None:
    """Enqueue `func(pk)` again as job `job_id` once the transaction commits, first
    deleting what is left of the lost one (a failed job, one a dead worker started)
    so RQ's registries do not hold a job that is queued again."""
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    try:
        Job.fetch(job_id, connection=queue.connection).delete()
    except NoSuchJobError:
        pass
    queue.enqueue(func, pk, job_id=job_id)


def requeue_lost(
    queued: QuerySet, func: Callable[[int], None], job_id: Callable[[int], str], now: datetime
) -> list[int]:
    """Enqueue again the rows of `queued` (steps or verification runs, all queued) that
    have waited settings.RESYNC_LOST_AFTER seconds (or were queued again with no
    time, runner.lifecycle.interrupt_step) and whose RQ job `job_id(pk)` is lost.

    The wait lets an enqueue whose transaction just committed reach Redis first.
    Moving queued_at claims the row under its lock: two recoverers never both enqueue
    it, and the next pass waits again before it looks. Returns the ids enqueued.
    """
    lost_after = timedelta(seconds=settings.RESYNC_LOST_AFTER)
    waited = queued.filter(Q(queued_at__lt=now - lost_after) | Q(queued_at=None))
    touched = []
    for pk, queued_at in waited.values_list("pk", "queued_at"):
        if not job_lost(job_id(pk)):
            continue
        with transaction.atomic():
            if queued.filter(pk=pk, queued_at=queued_at).update(queued_at=now):
                requeue_job(func, pk, job_id(pk))
                touched.append(pk)
                log.warning("re-enqueued %s: its RQ job was lost", job_id(pk))
    return touched
