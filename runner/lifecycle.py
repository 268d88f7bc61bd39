"""A resync request's steps, from queued to finished, and the request's layers with them.

One module for both because they call each other: a step's end advances its
request, and advancing queues the next layer's steps. Split in two, each would
import the other.

How a resync starts, runs and lands:

    starts  tool.actions.do_request_resync stores the request and its steps
            (pending, one per object, by planner layer) and calls start(), unless
            the district and year already run one: then it waits.
    runs    start() -> advance(): the next layer's steps are queued (queue_steps,
            one RQ job `step-<id>` each, enqueued once the transaction commits);
            steps with nothing to move are finished at once (finish_empty).
            A worker runs the job run_step(): claim() -> refusal() (the
            requester may have lost the right) -> move_records() ->
            finish_step(), or fail_step() when it raised, or interrupt_step()
            when its database connection was cut (queued again, up to
            jobs.MAX_ATTEMPTS). runner.recovery queues again what a dead worker
            or a lost job left behind.
            Every step's end calls advance(): once a layer has finished, the
            next one is queued; after the last, finish_request().
            A small district's request (fewer records than
            RESYNC_ONE_JOB_RECORDS) is one job instead, run_request `request-<id>`:
            it runs each layer's steps through the same run_step, side by side on
            RESYNC_JOB_LANES threads (runner.lanes), and advances between layers
            itself (issue 16: a job and a wake-up per step cost more than a small
            object's records).
    lands   the step's DISBatchHistory row (status, counts) and its ErrorLog rows;
            the state's StateRecord rows (runner.engine, one transaction per step);
            the request's outcome; live events (step.status, request.finished)
            after commit and a Process Alert to the requester; then the oldest
            request waiting for the district and year starts.

Locks: a district's row is the one lock its requests take, always first (see
advance_locked).
"""

from __future__ import annotations

import functools
import itertools
import logging
import traceback
from collections.abc import Callable

import django_rq
from django.conf import settings
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import F, QuerySet
from django.db.models.sql import UpdateQuery
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertName, ProcessAlert
from core import events, timefmt
from core.errors import log_refusal
from history.models import FINISHED, DISBatchHistory, ErrorLog, StepStatus
from resync import rights, status
from resync.models import District, DistrictRecord, ResyncRequest, objects_holding
from runner import batch, bulk, engine, jobs, lanes

log = logging.getLogger(__name__)

# What a cut or lost database connection raises (pg_terminate_backend, a
# restarted server, a network drop): the step was interrupted, not wrong.
DATABASE_LOST = (OperationalError, InterfaceError)


# ---- the request: start, advance, finish ------------------------------------------


def start(request: ResyncRequest, enqueue: bool = True) -> bool:
    """Run the request: its first layer is queued, or its one job (a small district's).
    The caller holds its district's lock. Returns True for a one-job request: with
    `enqueue` False its job is the caller's to enqueue (queue_requests)."""
    one_job = fits_one_job(request)
    ResyncRequest.objects.filter(pk=request.pk).update(
        status=ResyncRequest.Status.RUNNING, started_at=timezone.now(), current_layer=-1, one_job=one_job
    )
    if not one_job:
        advance_locked(request.pk)
    elif enqueue:
        queue_request(request.pk)
    return one_job


def fits_one_job(request: ResyncRequest) -> bool:
    """Does the district hold fewer records than settings.RESYNC_ONE_JOB_RECORDS? Then
    its request runs whole in one job (run_request). One index read of at most that
    many entries, whatever the district's size; a Selective Sync names few records."""
    limit = settings.RESYNC_ONE_JOB_RECORDS
    if not limit:
        return False
    if request.records is not None:
        return True
    beyond = DistrictRecord.objects.filter(district_id=request.district_id).order_by("pk")
    return not beyond.values_list("pk", flat=True)[limit - 1 : limit].exists()


def request_job_id(request_id: int) -> str:
    """The one RQ job of a one-job request run on its own."""
    return f"request-{request_id}"


# A group job (run_requests) holds up to this many requests per lane.
REQUESTS_PER_LANE = 4


def queue_requests(request_ids: list[int]) -> None:
    """Enqueue the jobs of one-job requests just started together (a state request's
    small districts): in groups, each one job whose lanes run a request each
    (run_requests), so one worker judges a district while the database writes another's
    (one request at a time, a worker waited on PostgreSQL about half the time: issue
    16). With one lane, or a group of one, each request has its own job."""
    size = settings.RESYNC_JOB_LANES * REQUESTS_PER_LANE
    if settings.RESYNC_JOB_LANES < 2:
        size = 1
    for start_at in range(0, len(request_ids), size):
        group = request_ids[start_at : start_at + size]
        if len(group) == 1:
            queue_request(group[0])
            continue
        job_id = f"requests-{group[0]}"
        ResyncRequest.objects.filter(pk__in=group).update(job=job_id)
        transaction.on_commit(lambda group=group, job_id=job_id: _enqueue_group(group, job_id))


def _enqueue_group(group: list[int], job_id: str) -> None:
    if jobs.claim_enqueue(job_id, settings.RESYNC_LOST_AFTER):
        django_rq.get_queue(settings.RQ_QUEUE).enqueue(run_requests, group, job_id=job_id)


def run_requests(request_ids: list[int]) -> None:
    """The RQ job of a group of one-job requests (queue_requests): each run whole by
    run_request, side by side on this worker's lanes. A request recovery took from
    the group (its job lost) runs on its own job; if both run it, each of its steps
    is still claimed once."""
    lanes.run_all(request_ids, run_request, settings.RESYNC_JOB_LANES)


def queue_request(request_id: int, dead_worker: str = "") -> None:
    """Enqueue a one-job request's job once the transaction commits, unless RQ still has
    it or someone enqueued it in the last RESYNC_LOST_AFTER seconds; whatever RQ holds
    when its worker `dead_worker` is known dead. After the commit, so Redis is never
    called under the district's lock, and a Redis that is down leaves the request to
    recovery."""
    transaction.on_commit(lambda: _enqueue_request(request_id, dead_worker))


# A dead worker's name (host:pid) is not taken again this soon.
DEAD_WORKER_CLAIM_SECONDS = 3600


def _enqueue_request(request_id: int, dead_worker: str) -> None:
    job_id = request_job_id(request_id)
    group = ResyncRequest.objects.filter(pk=request_id).values_list("job", flat=True).first()
    if group and group != job_id:
        if not dead_worker and not jobs.job_lost(group):
            return  # its group's job will run it
        # The group's job is lost, or its worker dead: from now on the request has a job
        # of its own, so it is enqueued alone, not as the group it no longer runs with.
        ResyncRequest.objects.filter(pk=request_id, job=group).update(job=job_id)
    if not dead_worker and not jobs.job_lost(job_id):
        return
    # The claim: of two recoverers (or a recoverer and the enqueue it raced), one enqueues.
    # Taken even for a dead worker's job, so the others' ordinary enqueues hold off.
    claimed = jobs.claim_enqueue(job_id, settings.RESYNC_LOST_AFTER)
    if dead_worker:
        # What decides then is a claim once per dead worker: it may have run two of the
        # request's steps (its lanes), found by one recoverer or by two, and a second
        # enqueue would delete the job the first one enqueued, maybe while another
        # worker runs it.
        claimed = jobs.claim_enqueue(f"{job_id}:{dead_worker}", DEAD_WORKER_CLAIM_SECONDS)
    if claimed:
        jobs.requeue_job(run_request, request_id, job_id)


def run_request(request_id: int) -> None:
    """The RQ job of a one-job request: its steps, layer after layer, on this worker's
    lanes (runner.lanes). Each step is still claimed, run, counted and ended (its history row,
    its own state transaction, its live pushes) as a step's own job does it; only the
    job round trips and the wake-ups between layers are saved. A step queued again
    (its connection cut) runs again here; one another worker runs (recovery's) ends
    this job, and that step's end enqueues it again."""
    queued = DISBatchHistory.objects.filter(request_id=request_id, status=StepStatus.QUEUED)
    requester_id = ResyncRequest.objects.values_list("requested_by_id", flat=True).get(pk=request_id)
    while True:
        # The requester read afresh for each layer, its rights then cached on the
        # instance for the layer's steps (and its empty ones, advance_locked): checked
        # from the database for every step, they cost a state request's small steps
        # more than their records (issue 16).
        requester = rights.remember(User.objects.filter(pk=requester_id).first()) if requester_id else None
        ids = list(queued.order_by("layer", "id").values_list("pk", flat=True))
        if not ids:
            with transaction.atomic():
                ids = advance_locked(request_id, driving=True, requester=requester)
            if not ids:
                return
        catalog = engine.read_catalog()  # likewise: the same for every step of the layer
        read = read_steps(ids)
        run = functools.partial(run_unit, requester=requester, catalog=catalog, read=read)
        lanes.run_all(plan_units(ids, read), run, settings.RESYNC_JOB_LANES)


def plan_units(ids: list[int], read: dict[int, DISBatchHistory]) -> list[list[int]]:
    """A layer's steps as a one-job request runs them: each large one alone, the most
    records first (on two lanes, the biggest must not start last while the other lane
    idles), then the small ones in batches (runner.batch, RESYNC_BATCH_RECORDS). One
    counting statement; the layer's order is the planner's on one lane with no batches."""
    steps = [read[i] for i in ids]
    if len({s.layer for s in steps}) > 1:
        # Several layers at once (span): one batch, in layer order, so that children are
        # judged after their parents in it and no lane runs them before their parents commit.
        return [ids]
    if len(steps) < 2 or (settings.RESYNC_JOB_LANES == 1 and not settings.RESYNC_BATCH_RECORDS):
        return [[i] for i in ids]
    # A one-job district holds fewer than RESYNC_ONE_JOB_RECORDS: every record is counted.
    counted = batch.sizes(steps, max(settings.RESYNC_ONE_JOB_RECORDS, settings.RESYNC_CHUNK))
    return [[s.pk for s in unit] for unit in batch.pack(steps, counted, settings.RESYNC_BATCH_RECORDS)]


def run_unit(
    ids: list[int],
    requester: User | None = None,
    catalog: engine.Catalog | None = None,
    read: dict[int, DISBatchHistory] | None = None,
) -> None:
    """One unit of a one-job request's layer (plan_units): a step, or a batch of small ones."""
    if len(ids) == 1:
        run_step(ids[0], then_advance=False, requester=requester, catalog=catalog, read=read)
    else:
        run_batch(ids, requester=requester, catalog=catalog, read=read)


def advance(request_id: int) -> None:
    """Start the next layer once every step of the current one has finished."""
    with transaction.atomic():
        advance_locked(request_id)


def advance_locked(request_id: int, driving: bool = False, requester: User | None = None) -> list[int]:
    """Advance the request, in the caller's transaction, under its district's lock.

    The district's row is the one lock a district and year's requests take, in
    the same order everywhere: do_request_resync holds it while it decides
    whether a new request must wait, and this holds it before the request's
    own row. A request finishing (here, through finish_request) and one being
    created are serialised, so the finishing one always sees the new one
    waiting: on separate locks it could miss it, and the new request waited
    with nothing running until some other request ended.

    Returns the ids of the steps it queued. A one-job request is moved on by its
    job (run_request, `driving`): its steps are queued for that job to run, not
    enqueued; anyone else advancing it makes sure its job is in RQ. `requester`: the
    request's requester as that job remembered it (rights.remember), for its empty steps.

    The request's steps are read once, here, and followed in memory while empty layers
    end: read again by each check, each layer and each empty layer, they cost a worker
    40% of its time during a state resync (issue 16). A step that ends meanwhile on
    another worker advances the request itself, once this has committed.
    """
    district_id = ResyncRequest.objects.values_list("district_id", flat=True).get(pk=request_id)
    District.objects.select_for_update().only("pk").get(pk=district_id)
    request = (
        ResyncRequest.objects.select_for_update(of=("self",))
        .select_related("district", "requested_by")
        .get(pk=request_id)
    )
    if request.status != ResyncRequest.Status.RUNNING:
        return []
    steps = request_steps(request)
    while True:
        # Every layer up to the current one: a one-job request's batch may have run several.
        if any(s.layer <= request.current_layer and not s.finished for s in steps):
            return []
        if request.one_job and not driving:
            queue_request(request.pk)
            return []
        nxt = request.current_layer + 1
        pending = [s for s in steps if s.layer >= nxt and s.status == StepStatus.PENDING]
        last = span(request, pending) if request.one_job and driving and pending else nxt
        layer = [s for s in pending if s.layer <= last]
        if not layer:
            break
        request.current_layer = last
        request.save(update_fields=["current_layer"])
        rest = finish_empty(request, layer, requester)
        if rest:  # else nothing to move in the whole layer: on to the next one
            # A one-job request's job orders its layer itself (plan_units, by the records there now).
            ids = [s.pk for s in rest] if request.one_job else longest_first(request, rest)
            queue_steps(ids, enqueue=not request.one_job)
            return ids
    if any(not s.finished for s in steps):
        return []
    finish_request(request)
    return []


def request_steps(request: ResyncRequest) -> list[DISBatchHistory]:
    """The request's steps in layer order, each with its object, and with `request` and
    its district as theirs (one instance of each for all of them, not one per step)."""
    steps = list(
        DISBatchHistory.objects.filter(request=request).select_related("sync_object").order_by("layer", "pk")
    )
    for step in steps:
        _share(step, request)
    return steps


def _share(step: DISBatchHistory, request: ResyncRequest) -> None:
    step.request = request
    step.district = request.district


def span(request: ResyncRequest, pending: list[DISBatchHistory]) -> int:
    """The last layer a one-job request's job runs together with the first of its
    `pending` steps (in layer order), in one
    batch (runner.batch): the layers from that one on that hold RESYNC_BATCH_RECORDS
    records or fewer in all (and no Selective Sync's steps). A small district's whole
    request is then one read, one judgement pass and one state transaction: its
    children's parents are looked up in the batch itself (batch.judge), not at the
    state. One counting statement; the first layer itself when it alone holds more."""
    first = pending[0].layer
    limit = settings.RESYNC_BATCH_RECORDS
    if not limit or request.records is not None:
        return first
    counted = batch.sizes(pending, limit + 1)
    last, total = first, 0
    for layer, group in itertools.groupby(pending, key=lambda s: s.layer):
        group = list(group)
        records = sum(counted[s.pk] for s in group)
        if total + records > limit or not all(batch.small(s) for s in group):
            break
        last, total = layer, total + records
    return last


def longest_first(request: ResyncRequest, layer: list[DISBatchHistory]) -> list[int]:
    """The layer's step ids, those whose object processed most last time first.

    Workers take steps in queue order: a layer's biggest step queued last
    would run alone at the end while the other workers idle.
    """
    before = (
        DISBatchHistory.objects.filter(
            district_id=request.district_id, school_year=request.school_year, status__in=FINISHED
        )
        .exclude(request=request)
        .latest_per_object()
    )
    steps = [(s.pk, s.sync_object_id) for s in layer]
    steps.sort(key=lambda s: -before[s[1]].processed if s[1] in before else 0)
    return [pk for pk, _obj in steps]


def finish_request(request: ResyncRequest) -> None:
    """Every step has finished: store the outcome, tell the requester, start the next waiting."""
    steps = list(DISBatchHistory.objects.filter(request=request).only("status", "processed", "errors"))
    request.status = ResyncRequest.Status.FINISHED
    request.outcome = status.worst([s.colour for s in steps])
    request.steps_failed = sum(s.status == StepStatus.FAILED for s in steps)
    request.finished_at = timezone.now()
    request.save(update_fields=["status", "outcome", "steps_failed", "finished_at"])
    events.send(
        _groups(request),
        {
            "type": "request.finished",
            "request": request.pk,
            "district": request.district_id,
            "outcome": request.outcome,
        },
    )
    if request.requested_by_id:
        ProcessAlert.objects.notify(
            [request.requested_by],
            name=AlertName.RESYNC_FINISHED,
            category=ProcessAlert.VERTICAL_INTEROPERABILITY,
            # Named by district, year and time (ResyncRequest.__str__), not by ids.
            message=f"{request} finished {request.outcome.title()}.",
            # Its own page (steps, summary, errors); alerts.links checks it whenever shown.
            link=reverse("admin:resync_resyncrequest_change", args=[request.pk]),
            district=request.district,
            request=request,
        )
    start_next(request.district_id, request.school_year)


def start_next(district_id: int, year: int) -> ResyncRequest | None:
    """Start the oldest request waiting for the district and year, if any; the caller
    holds the district's lock and knows nothing of theirs runs."""
    waiting = (
        ResyncRequest.objects.filter(
            district_id=district_id, school_year=year, status=ResyncRequest.Status.WAITING
        )
        .order_by("id")
        .first()
    )
    if waiting is not None:
        start(waiting)
    return waiting


def _groups(request: ResyncRequest) -> list[str]:
    # A district never learns which objects the state asked for: state requests
    # are pushed to the state's group only.
    groups = [events.STATE_GROUP]
    if request.level == ResyncRequest.Level.DISTRICT:
        groups.append(events.district_group(request.district_id))
    return groups


# ---- a step: queue, claim, run, finish / fail / interrupt --------------------------


def step_job_id(step_id: int) -> str:
    """The RQ job of a step is named after it: whether it still exists is one lookup."""
    return f"step-{step_id}"


def queue_steps(step_ids: list[int], enqueue: bool = True) -> None:
    """Mark the steps queued and enqueue a job for each (once the transaction commits:
    django-rq's on_db_commit mode); a one-job request's job runs them (enqueue=False)."""
    DISBatchHistory.objects.filter(pk__in=step_ids).update(status=StepStatus.QUEUED, queued_at=timezone.now())
    if not enqueue:
        return
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    for step_id in step_ids:
        queue.enqueue(run_step, step_id, job_id=step_job_id(step_id))


def finish_empty(
    request: ResyncRequest, steps: list[DISBatchHistory], requester: User | None = None
) -> list[DISBatchHistory]:
    """Finish here those of the request's `steps` with no record of their object on
    either side, and return the others. Such a step would move and remove nothing; an
    RQ job for it costs tens of milliseconds, and a catalog has dozens of objects a
    district does not use. The requester's rights are checked as the job checks them:
    `requester` as remembered (rights.remember), else read here once for them all."""
    if request.records is not None:  # a Selective Sync names its records: let its step look
        return steps
    rest, empty = [], []
    request.requested_by = requester or rights.remember(request.requested_by)
    holding = objects_holding(request.district, [s.sync_object for s in steps], request.school_year)
    for step in steps:
        if step.sync_object_id in holding:
            rest.append(step)
        elif refused := refusal(step):
            step.started_at = timezone.now()  # written with its end, in _record_end's one UPDATE
            _record_end(step, refused)
        else:
            empty.append(step)
    # The rest end alike (nothing processed, no error): one UPDATE for all of them.
    now = timezone.now()
    colour = status.colour(0, 0)
    DISBatchHistory.objects.filter(pk__in=[s.pk for s in empty]).update(
        status=colour, processed=0, errors=0, started_at=now, ended_at=now, message=""
    )
    for step in empty:
        step.status, step.processed, step.errors, step.started_at, step.ended_at = colour, 0, 0, now, now
    push_steps(empty)
    return rest


def claim(step_id: int, worker: str, read: DISBatchHistory | None = None) -> DISBatchHistory | None:
    """Take a queued step for this worker; None if another took it or it is no longer queued.

    `read`: the step as its one-job request read it with its layer (read_steps), claimed
    in two statements instead of four: it is claimed only if its attempts have not
    changed since (a compare-and-swap), else read afresh as any step is.
    """
    queued = DISBatchHistory.objects.filter(pk=step_id, status=StepStatus.QUEUED)
    if read is not None:
        district_id = read.district_id
        queued = queued.filter(attempts=read.attempts)
    else:
        district_id = queued.values_list("district_id", flat=True).first()
        if district_id is None:
            return None
    now = timezone.now()
    taken = _take(queued, district_id, worker, now)
    if not taken:
        # Its row moved on since the layer was read (recovery queued it again): as any step.
        return claim(step_id, worker) if read is not None else None
    if read is None:
        return read_steps([step_id])[step_id]
    read.status, read.started_at, read.heartbeat_at, read.worker = StepStatus.RUNNING, now, now, worker
    read.processed = read.errors = 0
    read.attempts += 1
    return read


def _take(queued: QuerySet[DISBatchHistory], district_id: int, worker: str, now) -> int:
    """Mark the step `queued` finds running on `worker`, under its district's row lock, in
    one transaction; returns 1 if it did. The lock is a load's merge's
    (loads.actions.do_load): a step starts before a merge, which then waits for it, or
    after it has committed, never during it, so the step reads the load all or not at all.
    """
    values = {
        "status": StepStatus.RUNNING,
        "started_at": now,
        "heartbeat_at": now,
        "worker": worker,
        "processed": 0,
        "errors": 0,
        "attempts": F("attempts") + 1,
    }
    lock = District.objects.select_for_update().filter(pk=district_id).values_list("pk")
    connection = connections[queued.db]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with transaction.atomic():
            list(lock)
            return queued.update(**values)
    # Both statements in one round trip: PostgreSQL runs a multi-statement query as one
    # transaction (the connection is in autocommit), so the lock is held until the
    # update commits, as in an atomic block: one round trip instead of four.
    update = queued.query.chain(UpdateQuery)
    update.add_update_values(values)
    update_sql, update_params = update.get_compiler(queued.db).as_sql()
    lock_sql = f"SELECT 1 FROM {connection.ops.quote_name(District._meta.db_table)} WHERE id = %s FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(f"{lock_sql}; {update_sql}", [district_id, *update_params])
        return cursor.rowcount


def read_steps(ids: list[int]) -> dict[int, DISBatchHistory]:
    """The steps by id, with what running them reads (district, object, request, requester):
    a request's steps share one instance of it (request_steps)."""
    steps = list(DISBatchHistory.objects.filter(pk__in=ids).select_related("sync_object"))
    requests = ResyncRequest.objects.select_related("district", "requested_by").in_bulk(
        {step.request_id for step in steps}
    )
    read = {}
    for step in steps:
        if step.request_id in requests:  # else deleted since, with its steps
            _share(step, requests[step.request_id])
            read[step.pk] = step
    return read


def refusal(step: DISBatchHistory) -> str:
    """Why the step may not run now, or "": its requester may have lost a right since
    they asked. A refusal is logged (statesync.refusals) and is the step's failure."""
    request = step.request
    denied = rights.why_refused(request.requested_by, step.district, request.level, step.sync_object.name)
    if not denied:
        return ""
    log_refusal(request.requested_by, "job", f"step {step.pk} ({step.sync_object.name}): {denied}")
    return f"Refused at run time: {denied}"


def run_step(
    step_id: int,
    then_advance: bool = True,
    requester: User | None = None,
    catalog: engine.Catalog | None = None,
    read: dict[int, DISBatchHistory] | None = None,
) -> None:
    """The RQ job of one step: claim it, move its records, record its end, and move its
    request on (not when a one-job request's job runs it: that job moves it on, and
    hands over its `requester`, `catalog` and steps as `read`, read once for the layer)."""
    worker = jobs.worker_name()
    step = claim(step_id, worker, read.get(step_id) if read else None)
    if step is None:
        log.info("step %s is not queued any more; skipping", step_id)
        return
    if requester is not None and requester.pk == step.request.requested_by_id:
        step.request.requested_by = requester
    _run_claimed(step, worker, then_advance, catalog)


def move_records(
    step: DISBatchHistory,
    on_progress: Callable[[DISBatchHistory], None] | None = None,
    catalog: engine.Catalog | None = None,
) -> DISBatchHistory:
    """Move a claimed step's records to the state and count them (its end is the
    caller's): judged at the state on PostgreSQL (runner.bulk), in the worker otherwise
    (runner.engine)."""
    if step.attempts > 1:  # a retried step starts its Error Log afresh: nothing is counted twice
        ErrorLog.objects.filter(step=step).delete()
    if bulk.fits(step):
        return bulk.move(step, on_progress, catalog or engine.read_catalog())
    return engine.move_records(step, on_progress, catalog)


def _run_claimed(
    step: DISBatchHistory, worker: str, then_advance: bool, catalog: engine.Catalog | None
) -> None:
    step_id = step.pk
    try:
        if refused := refusal(step):
            fail_step(step, refused, then_advance)
            return
        push_step(step)
        move_records(step, on_progress=push_step, catalog=catalog)
        finish_step(step, then_advance)
    except DATABASE_LOST as e:
        # The step's state transaction died with its connection: nothing it did
        # counts. It must not stay "running" on this live worker (its pid alive,
        # recovery would wait for its heartbeat to go stale), and this worker's
        # own connections are dead: drop them, so the history write (and every
        # later job) gets a fresh one.
        log.warning("step %s lost its database connection: %s", step_id, e)
        jobs.reset_connections()
        if interrupt_step(step_id, worker, f"{type(e).__name__}: {e}"):
            jobs.recover_after_job = True
    except Exception as e:
        # A failed step does not stop the batch: it is marked failed and its
        # children still run (their orphaned records will error).
        log.exception("step %s failed", step_id)
        jobs.reset_connections()
        step = (
            DISBatchHistory.objects.select_related("request", "sync_object", "district")
            .filter(pk=step_id)
            .first()
        )
        if step is not None and not step.finished:
            fail_step(step, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}", then_advance)


def run_batch(
    step_ids: list[int],
    requester: User | None = None,
    catalog: engine.Catalog | None = None,
    read: dict[int, DISBatchHistory] | None = None,
) -> None:
    """Run small steps of one layer together (runner.batch): claimed in one statement,
    each checked for its requester's rights, moved in one state transaction, ended in
    one UPDATE, each pushed. A cut connection queues them all again, as it does one
    step; any other failure rolls the batch back and runs its steps one by one, so
    only the step at fault fails."""
    worker = jobs.worker_name()
    read = read or read_steps(step_ids)
    steps = claim_all([read[i] for i in step_ids], worker)
    taken = {s.pk for s in steps}
    for step_id in step_ids:
        if step_id not in taken:  # its row moved on since the layer was read: as any step
            run_step(step_id, then_advance=False, requester=requester, catalog=catalog)
    runnable = []
    for step in steps:
        if requester is not None and requester.pk == step.request.requested_by_id:
            step.request.requested_by = requester
        if refused := refusal(step):
            fail_step(step, refused, then_advance=False)
        else:
            runnable.append(step)
    push_steps(runnable)
    if not runnable:
        return
    try:
        with batch.Beat(runnable, push_steps):
            batch.move(runnable, catalog or engine.read_catalog())
        _record_ends(runnable)  # a cut here too: queued again, and the rerun converges
    except DATABASE_LOST as e:
        log.warning("steps %s lost their database connection: %s", [s.pk for s in runnable], e)
        jobs.reset_connections()
        for step in runnable:
            if interrupt_step(step.pk, worker, f"{type(e).__name__}: {e}"):
                jobs.recover_after_job = True
    except Exception:
        log.exception("a batch of steps %s failed; running them one by one", [s.pk for s in runnable])
        jobs.reset_connections()
        ErrorLog.objects.filter(step__in=runnable).delete()
        for step in runnable:
            _run_claimed(step, worker, False, catalog)


def claim_all(steps: list[DISBatchHistory], worker: str) -> list[DISBatchHistory]:
    """claim() for several steps as their layer read them (read_steps): those of them
    still queued are marked running on this worker, under their districts' row locks,
    in one transaction (one round trip on PostgreSQL). Returns the ones it took."""
    now = timezone.now()
    ids = [s.pk for s in steps]
    districts = sorted({s.district_id for s in steps})  # locked in id order: no deadlock
    connection = connections[DISBatchHistory.objects.db]
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        quote = connection.ops.quote_name
        sql = (
            f"SELECT 1 FROM {quote(District._meta.db_table)} WHERE id = ANY(%s) ORDER BY id FOR UPDATE; "
            f"UPDATE {quote(DISBatchHistory._meta.db_table)} SET status = %s, started_at = %s, "
            "heartbeat_at = %s, worker = %s, processed = 0, errors = 0, attempts = attempts + 1 "
            "WHERE id = ANY(%s) AND status = %s RETURNING id, attempts"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [districts, StepStatus.RUNNING, now, now, worker, ids, StepStatus.QUEUED])
            taken = dict(cursor.fetchall())
    else:
        with transaction.atomic():
            list(
                District.objects.select_for_update().filter(pk__in=districts).order_by("pk").values_list("pk")
            )
            DISBatchHistory.objects.filter(pk__in=ids, status=StepStatus.QUEUED).update(
                status=StepStatus.RUNNING,
                started_at=now,
                heartbeat_at=now,
                worker=worker,
                processed=0,
                errors=0,
                attempts=F("attempts") + 1,
            )
            # This claim's rows: its worker and its very start.
            mine = DISBatchHistory.objects.filter(pk__in=ids, worker=worker, started_at=now)
            taken = dict(mine.values_list("pk", "attempts"))
    claimed = []
    for step in steps:
        if step.pk in taken:
            step.status, step.started_at, step.heartbeat_at, step.worker = (
                StepStatus.RUNNING,
                now,
                now,
                worker,
            )
            step.processed = step.errors = 0
            step.attempts = taken[step.pk]
            claimed.append(step)
    return claimed


def _record_ends(steps: list[DISBatchHistory]) -> None:
    """_record_end for steps that succeeded, in one UPDATE."""
    now = timezone.now()
    for step in steps:
        step.ended_at = now
        step.status = status.colour(step.processed, step.errors)
    connection = connections[DISBatchHistory.objects.db]
    if connection.vendor != "postgresql":
        DISBatchHistory.objects.bulk_update(steps, ["status", "processed", "errors", "ended_at"])
    else:
        # One UPDATE joined to the values: bulk_update's CASE per field and step cost a
        # batch's worker more than its claim and its read together.
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(steps))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {connection.ops.quote_name(DISBatchHistory._meta.db_table)} AS h SET "
                "status = v.status, processed = v.processed, errors = v.errors, ended_at = %s "
                f"FROM (VALUES {rows}) AS v(id, status, processed, errors) WHERE h.id = v.id",
                [now, *(x for s in steps for x in (s.pk, s.status, s.processed, s.errors))],
            )
    push_steps(steps)


def finish_step(step: DISBatchHistory, then_advance: bool = True) -> None:
    """Record a step's end, its colour from its counts, and move the request on."""
    _record_end(step, "")
    if then_advance:
        advance(step.request_id)


def fail_step(step: DISBatchHistory, failure: str, then_advance: bool = True) -> None:
    """Record a step's failure (nothing it did counts) and move the request on."""
    _record_end(step, failure)
    if then_advance:
        advance(step.request_id)


def interrupt_step(step_id: int, worker: str, error: str) -> bool:
    """The step running on `worker` lost its database connection: queue it again, or
    after MAX_ATTEMPTS fail it naming the error. Returns True when it was queued again.

    Its state transaction died with the connection, so nothing it did counts.
    queued_at stays empty: the next recovery pass enqueues it (jobs.requeue_lost) once RQ
    has ended the interrupted job, whose id the new one takes. The worker runs
    that pass as soon as the job ends.
    """
    running = DISBatchHistory.objects.filter(pk=step_id, status=StepStatus.RUNNING, worker=worker)
    step = running.select_related("request", "sync_object", "district").first()
    if step is None:  # it finished after all, or recovery took it
        return False
    if step.attempts < jobs.MAX_ATTEMPTS:
        with transaction.atomic():
            ErrorLog.objects.filter(step=step).delete()
            queued = running.update(
                status=StepStatus.QUEUED, worker="", queued_at=None, processed=0, errors=0
            )
        if queued:
            step.status, step.processed, step.errors = StepStatus.QUEUED, 0, 0
            push_step(step)
            log.warning("re-queued step %s: %s", step_id, error)
        return bool(queued)
    # Clearing the worker claims the step, so no recoverer fails it too.
    if running.update(worker=""):
        fail_step(
            step, f"The database connection was lost {step.attempts} times while running this step: {error}"
        )
    return False


def _record_end(step: DISBatchHistory, failure: str) -> None:
    step.ended_at = timezone.now()
    if failure:
        # The step's state transaction was rolled back: nothing it did counts.
        ErrorLog.objects.filter(step=step).delete()
        step.processed = step.errors = 0
        step.status, step.message = StepStatus.FAILED, failure[:2000]
    else:
        step.status = status.colour(step.processed, step.errors)
    DISBatchHistory.objects.filter(pk=step.pk).update(
        status=step.status,
        processed=step.processed,
        errors=step.errors,
        started_at=step.started_at,
        ended_at=step.ended_at,
        message=step.message,
    )
    push_step(step)


def step_event(step: DISBatchHistory) -> dict:
    """A step's live event, as the tool's pages read it."""
    return {
        "type": "step.status",
        "step": step.pk,
        "request": step.request_id,
        "district": step.district_id,
        "object": step.sync_object.name,
        # The tool shows batch results only: a Selective Sync's step (its request names
        # records) must not replace an object's row there.
        "selective": step.request.records is not None,
        "status": step.status,
        "processed": step.processed,
        "errors": step.errors,
        "colour": step.colour,
        "started_at": step.started_at.isoformat() if step.started_at else None,
        # As the page writes it (the district's zone, named): the browser shows this text.
        "started_at_text": timefmt.when(step.started_at, step.district),
    }


def push_step(step: DISBatchHistory) -> None:
    """Send the step's live event to the groups that may see its request (after commit)."""
    events.send(_groups(step.request), step_event(step))


def push_steps(steps: list[DISBatchHistory]) -> None:
    """Several steps of one request (a batch's, a layer's empty ones) as one push: the
    socket hands the browser each as a step.status of its own (live.consumers). A push
    costs the worker a few Redis round trips whatever it carries (issue 16)."""
    if len(steps) < 2:
        for step in steps:
            push_step(step)
        return
    first = steps[0]
    events.send(
        _groups(first.request),
        {
            "type": "steps.status",
            "request": first.request_id,
            "district": first.district_id,
            "steps": [step_event(step) for step in steps],
        },
    )
