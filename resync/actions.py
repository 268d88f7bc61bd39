"""Every resync operation has one home here.

check_* validates and authorises and raises ResyncError with a message naming
the problem; do_* changes data and sends events after commit. The admin, the
API, the commands and the RQ jobs all call these, so each rule is written once.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, replace
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import as_text

from alerts import events
from alerts.models import ProcessAlert
from history.models import FINISHED, DISBatchHistory, ErrorLog, StepStatus
from resync import engine, planner, rights, status
from resync.catalog import ALIASES
from resync.models import District, DistrictRecord, ResyncRequest, StateRecord, SyncObject

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
STALE_AFTER_SECONDS = 300
# A step queued settings.RESYNC_LOST_AFTER seconds whose RQ job is gone was lost
# (Redis restarted without persistence, the job deleted): recovery enqueues it
# again. The wait lets an enqueue whose transaction just committed reach Redis first.
STEP_JOB = "resync.jobs.run_step_job"


class ResyncError(ValueError):
    """Input StateSync refuses; the message names the problem."""

    def __init__(self, message: str, field: str = "objects"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Checked:
    district: District
    year: int
    objects: list[str] | None
    check_dependencies: bool
    plan: planner.Plan
    level: str = "district"
    user: object = None
    records: list[int] | None = None  # Selective Sync: the one object's record ids


def check_resync(
    district: District,
    year: int | None,
    objects: list[str] | None,
    check_dependencies: bool,
    user=None,
    level: str = "district",
) -> Checked:
    """Validate and authorise a resync request; `objects=None` asks for a full resync.

    `user=None` is the system itself (an operator's command): no rights apply.
    Raises RightsError for a missing right, ResyncError for bad input.
    """
    if user is not None:
        rights.check_request(user, district, level)
    year = district.scope_year if year is None else year
    if year not in district.years:
        allowed = ", ".join(str(y) for y in sorted(district.years))
        raise ResyncError(
            f"School year {year} is not configured for district {district.code}: choose {allowed}.", "year"
        )
    parents = SyncObject.objects.parents_map()
    offered = set(SyncObject.objects.offered(district, year).values_list("name", flat=True))
    names = None
    try:
        if objects is not None:
            names = planner.resolve(parents, objects, ALIASES)
            missing = [n for n in names if n not in offered]
            if missing:
                raise ResyncError(
                    f"Not offered for district {district.code} in {year}: " + ", ".join(missing) + "."
                )
        plan = planner.plan(parents, offered, names, check_dependencies=check_dependencies)
    except planner.PlanError as e:
        raise ResyncError(str(e)) from None
    if user is not None:
        rights.check_objects(user, plan.order, plan.added)
    return Checked(district, year, names, check_dependencies, plan, level, user)


def do_request_resync(checked: Checked) -> ResyncRequest:
    """Store the request and its steps; start it unless the district and year are busy."""
    by_name = {o.name: o for o in SyncObject.objects.filter(name__in=checked.plan.order)}
    with transaction.atomic():
        # One request at a time per district: lock its row while deciding.
        District.objects.select_for_update().get(pk=checked.district.pk)
        request = ResyncRequest.objects.create(
            district=checked.district,
            school_year=checked.year,
            objects_asked=checked.objects,
            records=checked.records,
            check_dependencies=checked.check_dependencies,
            level=checked.level,
            requested_by=checked.user,
        )
        DISBatchHistory.objects.bulk_create(
            DISBatchHistory(
                request=request,
                district=checked.district,
                school_year=checked.year,
                sync_object=by_name[name],
                layer=i,
            )
            for i, layer in enumerate(checked.plan.layers)
            for name in layer
        )
        busy = ResyncRequest.objects.filter(
            district=checked.district, school_year=checked.year, status=ResyncRequest.Status.RUNNING
        ).exists()
        if not busy:
            _start(request)
        if request.level == ResyncRequest.Level.STATE:
            _alert_state_request(request)
    return request


def _alert_state_request(request: ResyncRequest) -> None:
    # The district may not learn which objects the state asked for: the alert
    # names the district and year only, for district and state users alike.
    district = request.district
    ProcessAlert.objects.notify(
        rights.alert_recipients(district),
        name=ProcessAlert.STATE_RESYNC_REQUESTED,
        category=ProcessAlert.VERTICAL_INTEROPERABILITY,
        message=f"The state requested a resync of district {district.code} {district.name} for {request.school_year}.",
        link=reverse("admin:resync_tool", args=[district.code]),
        district=district,
        request=request,
    )


def _start(request: ResyncRequest) -> None:
    ResyncRequest.objects.filter(pk=request.pk).update(
        status=ResyncRequest.Status.RUNNING, started_at=timezone.now(), current_layer=-1
    )
    _advance_locked(request.pk)


def step_job_id(step_id: int) -> str:
    return f"step-{step_id}"


def _enqueue(step_ids: list[int]) -> None:
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    for step_id in step_ids:
        # django-rq's on_db_commit mode enqueues once this transaction commits.
        # The job is named after the step: whether it still exists is one lookup.
        queue.enqueue(STEP_JOB, step_id, job_id=step_job_id(step_id))


def advance(request_id: int) -> None:
    """Start the next layer once every step of the current one has finished."""
    with transaction.atomic():
        _advance_locked(request_id)


def _advance_locked(request_id: int) -> None:
    """Advance the request, in a transaction, under its district's lock.

    The district's row is the one lock a district and year's requests take, in
    the same order everywhere: do_request_resync holds it while it decides
    whether a new request must wait, and this holds it before the request's
    own row. A request finishing (here, through _finish) and one being created
    are serialised, so the finishing one always sees the new one waiting: on
    separate locks it could miss it, and the new request waited with nothing
    running until some other request ended.
    """
    district_id = ResyncRequest.objects.values_list("district_id", flat=True).get(pk=request_id)
    District.objects.select_for_update().only("pk").get(pk=district_id)
    request = ResyncRequest.objects.select_for_update().get(pk=request_id)
    if request.status != ResyncRequest.Status.RUNNING:
        return
    steps = DISBatchHistory.objects.filter(request=request)
    if steps.filter(layer=request.current_layer).exclude(status__in=FINISHED).exists():
        return
    nxt = request.current_layer + 1
    ids = _longest_first(request, steps.filter(layer=nxt, status=StepStatus.PENDING))
    if ids:
        request.current_layer = nxt
        request.save(update_fields=["current_layer"])
        ids = _finish_empty(request, ids)
        if not ids:  # nothing to move in the whole layer: on to the next one
            return _advance_locked(request_id)
        steps.filter(pk__in=ids).update(status=StepStatus.QUEUED, queued_at=timezone.now())
        _enqueue(ids)
        return
    if steps.exclude(status__in=FINISHED).exists():
        return
    _finish(request)


def _finish_empty(request: ResyncRequest, ids: list[int]) -> list[int]:
    """Finish here the steps with no record of their object on either side, and return
    the others' ids. Such a step would move and remove nothing; an RQ job for it
    costs tens of milliseconds, and a catalog has dozens of objects a district
    does not use. The requester's rights are checked as the job checks them."""
    if request.records is not None:  # a Selective Sync names its records: let its step look
        return ids
    steps = DISBatchHistory.objects.filter(pk__in=ids).select_related(
        "district", "sync_object", "request__requested_by"
    )
    rest = []
    for step in sorted(steps, key=lambda s: ids.index(s.pk)):
        district_side, state_side = engine.scope(step)
        if district_side.exists() or state_side.exists():
            rest.append(step.pk)
            continue
        denied = rights.still_allowed(
            request.requested_by, step.district, request.level, step.sync_object.name
        )
        if denied:
            what = f"step {step.pk} ({step.sync_object.name}): {denied}"
            rights.log_refusal(request.requested_by, "job", what)
        step.started_at = timezone.now()  # written with its end, in _record_end's one UPDATE
        _record_end(step, f"Refused at run time: {denied}" if denied else "")
    return rest


def _longest_first(request: ResyncRequest, layer) -> list[int]:
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
    steps = list(layer.values_list("pk", "sync_object_id"))
    steps.sort(key=lambda s: -before[s[1]].processed if s[1] in before else 0)
    return [pk for pk, _obj in steps]


def _finish(request: ResyncRequest) -> None:
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
            name=ProcessAlert.RESYNC_FINISHED,
            category=ProcessAlert.VERTICAL_INTEROPERABILITY,
            message=f"Resync {request.pk} of district {request.district.code} for {request.school_year} "
            f"finished {request.outcome.title()}.",
            link=reverse("admin:resync_tool", args=[request.district.code]),
            district=request.district,
            request=request,
        )
    waiting = (
        ResyncRequest.objects.filter(
            district_id=request.district_id,
            school_year=request.school_year,
            status=ResyncRequest.Status.WAITING,
        )
        .order_by("id")
        .first()
    )
    if waiting:
        _start(waiting)


def _groups(request: ResyncRequest) -> list[str]:
    # A district never learns which objects the state asked for: state requests
    # are pushed to the state's group only.
    groups = [events.STATE_GROUP]
    if request.level == ResyncRequest.Level.DISTRICT:
        groups.append(events.district_group(request.district_id))
    return groups


def step_event(step: DISBatchHistory) -> dict:
    return {
        "type": "step.status",
        "step": step.pk,
        "request": step.request_id,
        "district": step.district_id,
        "object": step.sync_object.name,
        "processed": step.processed,
        "errors": step.errors,
        "colour": step.colour,
        "started_at": step.started_at.isoformat() if step.started_at else None,
    }


def push_step(step: DISBatchHistory) -> None:
    events.send(_groups(step.request), step_event(step))


def do_finish_step(step: DISBatchHistory, failure: str = "") -> None:
    """Record a step's end (its colour from its counts, or failed) and move the request on."""
    _record_end(step, failure)
    advance(step.request_id)


def do_interrupt_step(step_id: int, worker: str, error: str) -> bool:
    """The step running on `worker` lost its database connection: queue it again, or
    after MAX_ATTEMPTS fail it naming the error. Returns True when it was queued again.

    Its state transaction died with the connection, so nothing it did counts.
    queued_at stays empty: the next recovery pass enqueues it (requeue_lost) once RQ
    has ended the interrupted job, whose id the new one takes. The worker runs
    that pass as soon as the job ends.
    """
    running = DISBatchHistory.objects.filter(pk=step_id, status=StepStatus.RUNNING, worker=worker)
    step = running.select_related("request", "sync_object").first()
    if step is None:  # it finished after all, or recovery took it
        return False
    if step.attempts < MAX_ATTEMPTS:
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
        do_finish_step(
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


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# True while this process runs an RQ job (jobs.ResyncWorker sets it). Between its
# jobs, a step or verification run that names this very process as its worker
# runs nowhere: the job that ran it ended (raised, its connection cut) without
# ending it, and recovery need not wait for a heartbeat to go stale.
job_running_here = False


def worker_dead(worker: str, heartbeat_at, now) -> bool:
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


def orphaned_here() -> bool:
    """Does a step or verification run still name this process as its worker, now that
    its job has ended? (See job_running_here.)"""
    from verification.models import VerificationRun  # verification builds on resync

    me = worker_name()
    return (
        DISBatchHistory.objects.filter(status=StepStatus.RUNNING, worker=me).exists()
        or VerificationRun.objects.filter(status=VerificationRun.Status.RUNNING, worker=me).exists()
    )


# What RQ will never run again. A job queued in no queue was removed from it.
_JOB_ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def job_lost(job_id: str) -> bool:
    """Will RQ never run job `job_id`? True when Redis no longer has it, when it ended
    (failed, stopped, canceled, finished) and when it is queued but in no queue."""
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    status = queue.connection.hget(Job.key_for(job_id), "status")
    if status is None:
        return True
    status = JobStatus(as_text(status))
    if status == JobStatus.QUEUED:
        # A worker moves the job it takes to the intermediate queue and only then
        # marks it started: there it is being taken, not lost.
        taking = queue.connection.lpos(queue.intermediate_queue_key, job_id) is not None
        return queue.get_job_position(job_id) is None and not taking
    return status in _JOB_ENDED


def requeue_job(func: str, pk: int, job_id: str) -> None:
    """Enqueue `func(pk)` again as job `job_id` once the transaction commits, first
    deleting what is left of the lost one (a failed job, one a dead worker started)
    so RQ's registries do not hold a job that is queued again."""
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    try:
        Job.fetch(job_id, connection=queue.connection).delete()
    except NoSuchJobError:
        pass
    queue.enqueue(func, pk, job_id=job_id)


def requeue_lost(queued: QuerySet, func: str, job_id, now) -> list[int]:
    """Enqueue again the rows of `queued` (steps or verification runs, all queued) that
    have waited settings.RESYNC_LOST_AFTER seconds (or were queued again with no
    time, do_interrupt_step) and whose RQ job `job_id(pk)` is lost.

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


def recover_stale_steps() -> list[int]:
    """Re-queue steps no worker will finish: running ones whose worker died (killed, lost),
    failed after MAX_ATTEMPTS; queued ones whose RQ job was lost (requeue_lost).

    Runs when a worker starts, on its periodic maintenance, and from the
    resync_recover command. Returns the ids of the steps it touched.
    """
    now = timezone.now()
    touched = []
    for step in DISBatchHistory.objects.filter(status=StepStatus.RUNNING).select_related("request"):
        if not worker_dead(step.worker, step.heartbeat_at, now):
            continue
        running = DISBatchHistory.objects.filter(pk=step.pk, status=StepStatus.RUNNING, worker=step.worker)
        if step.attempts < MAX_ATTEMPTS:
            with transaction.atomic():
                if running.update(status=StepStatus.QUEUED, worker="", queued_at=now):
                    requeue_job(STEP_JOB, step.pk, step_job_id(step.pk))
                    touched.append(step.pk)
                    log.warning("re-queued step %s: its worker %s died", step.pk, step.worker)
        # Clearing the worker claims the step, so two recoverers never both fail it.
        elif running.update(worker=""):
            step.refresh_from_db()
            do_finish_step(step, f"The worker died {step.attempts} times while running this step.")
            touched.append(step.pk)
            log.warning("failed step %s: its worker died %s times", step.pk, step.attempts)
    queued = DISBatchHistory.objects.filter(status=StepStatus.QUEUED)
    return touched + requeue_lost(queued, STEP_JOB, step_job_id, now)


def recover_requests() -> list[int]:
    """Move on the requests nothing else will move; returns their ids.

    - A running request none of whose steps is queued or running: the end of its
      last step never advanced it (a step row deleted underneath it, a worker cut
      off between a step's end and its advance). Advancing is idempotent under
      the district's lock, so racing a worker that is about to do it is harmless.
    - A waiting request whose district and year run nothing: its wake-up was
      lost. The oldest one starts, as _finish would have started it.
    """
    touched = []
    Status = ResyncRequest.Status
    moving = DISBatchHistory.objects.filter(
        request=OuterRef("pk"), status__in=[StepStatus.QUEUED, StepStatus.RUNNING]
    )
    stuck = ResyncRequest.objects.filter(status=Status.RUNNING).exclude(Exists(moving))
    for pk, layer in stuck.values_list("pk", "current_layer"):
        with transaction.atomic():
            _advance_locked(pk)
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
            # Under the lock do_request_resync and _finish take: the decision holds.
            District.objects.select_for_update().only("pk").get(pk=district_id)
            requests = ResyncRequest.objects.filter(district_id=district_id, school_year=year)
            if requests.filter(status=Status.RUNNING).exists():
                continue
            waiting = requests.filter(status=Status.WAITING).order_by("id").first()
            if waiting is not None:
                _start(waiting)
                touched.append(waiting.pk)
                log.warning("started request %s: it waited with nothing running", waiting.pk)
    return touched


def recover() -> tuple[list[int], list[int], list[int]]:
    """Everything dead workers, lost jobs and lost wake-ups left behind:
    (steps, verification runs, requests) touched."""
    from verification.actions import recover_stale_runs  # verification builds on resync

    return recover_stale_steps(), recover_stale_runs(), recover_requests()


# ---- Selective Sync ------------------------------------------------------------

SELECTIVE_OBJECTS = ("PersonIdentity", "Enrollment")
SELECTIVE_MAX = 1000


def level_for(user) -> str:
    # A state user's request is the state's: the district is alerted, not shown its objects.
    # Only for one who may also see state requests (state R): else the requester could not
    # see what they sent (their own answer would be a 404, or a 500 building it).
    state = user is not None and rights.may_send_state(user) and rights.is_state(user)
    return ResyncRequest.Level.STATE if state else ResyncRequest.Level.DISTRICT


def parse_record_ids(raw) -> list[int]:
    """Record ids from a list or from text separated by commas, spaces or new lines."""
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw or [])
    ids = []
    for item in items:
        try:
            value = int(str(item).strip())
        except ValueError:
            raise ResyncError(f"Record id {item!r} is not a whole number.", "records") from None
        if value <= 0:
            raise ResyncError(f"Record id {value} is not a positive number.", "records")
        if value >= 2**63:
            raise ResyncError(f"Record id {value} is too large.", "records")
        ids.append(value)
    if not ids:
        raise ResyncError("Give at least one record id.", "records")
    ids = sorted(set(ids))
    if len(ids) > SELECTIVE_MAX:
        raise ResyncError(f"At most {SELECTIVE_MAX} records at a time; got {len(ids)}.", "records")
    return ids


def check_selective_sync(district: District, year: int | None, obj: str, records, user=None) -> Checked:
    """Validate and authorise a Selective Sync: single PersonIdentity records by district
    person id, or Enrollment records by enrollment id; then the batch's own check."""
    if user is not None:
        rights.check_selective(user, district)
    name = {n.lower(): n for n in SELECTIVE_OBJECTS}.get(str(obj or "").strip().lower())
    if name is None:
        raise ResyncError(
            f"Selective Sync resyncs PersonIdentity or Enrollment records, not {obj!r}.", "object"
        )
    ids = parse_record_ids(records)
    checked = check_resync(district, year, [name], False, user=user, level=level_for(user))
    # A record only the state still holds is allowed: the resync removes it there.
    year_scoped = SyncObject.objects.filter(name=name, year_scoped=True).exists()
    at_district = DistrictRecord.objects.filter(district=district, sync_object__name=name, record_id__in=ids)
    at_state = StateRecord.objects.filter(district_code=district.code, sync_object=name, record_id__in=ids)
    if year_scoped:
        at_district = at_district.filter(school_year=checked.year)
        at_state = at_state.filter(school_year=checked.year)
    found = set(at_district.values_list("record_id", flat=True)) | set(
        at_state.values_list("record_id", flat=True)
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ResyncError(
            f"No {name} record {shown} at district {district.code} or at the state for {checked.year}.",
            "records",
        )
    return replace(checked, records=ids)


def do_selective_sync(checked: Checked) -> ResyncRequest:
    """A Selective Sync is a batch of one object narrowed to its records: same steps,
    Error Log and history."""
    if not checked.records:
        raise ResyncError("A Selective Sync needs the records check_selective_sync found.", "records")
    return do_request_resync(checked)


# ---- The year switch -----------------------------------------------------------

START_OF_YEAR_NEEDED = "Start-of-Year Resync Needed"


@dataclass(frozen=True)
class YearSwitch:
    district: District
    from_year: int
    end_of_year: ResyncRequest


def last_change_expression():
    """When a district's data last changed, as an expression on District rows: its latest
    record change (one index lookup) or its latest record deletion, whichever is later.
    A deleted record leaves no changed_at, yet the state holds it until the next resync.

    Greatest is NULL on SQLite when either side is, so each side falls back on the other."""
    changed = Subquery(
        DistrictRecord.objects.filter(district=OuterRef("pk"))
        .order_by("-changed_at")
        .values("changed_at")[:1]
    )
    deleted = F("records_deleted_at")
    return Greatest(Coalesce(changed, deleted), Coalesce(deleted, changed))


def last_change(district: District):
    """When the district's data last changed, read afresh (one query); the year-switch
    overview annotates the same expression, so both always agree."""
    last = District.objects.filter(pk=district.pk).annotate(last=last_change_expression())
    return last.values_list("last", flat=True).first()


def full_resyncs(district, year) -> QuerySet[ResyncRequest]:
    """The district's finished full resyncs of `year` in which every step ran (a failed
    step synced nothing). `district` and `year` may be OuterRefs: the year-switch
    overview uses it as a subquery.

    Only district-level requests count. The end- and start-of-year resyncs are the
    district's duty (the article: after the district finished entering its data); a
    state request is the state's, and a rule that counted it would tell the district,
    through its year-switch page, that the state had asked for every object. Whether a
    step failed is read from the request (steps_failed, written when it finished), so
    deleting DISBatchHistory rows (history D) never changes what the rule concludes."""
    return ResyncRequest.objects.filter(
        district=district,
        school_year=year,
        level=ResyncRequest.Level.DISTRICT,
        objects_asked__isnull=True,
        records__isnull=True,
        status=ResyncRequest.Status.FINISHED,
        steps_failed=0,
    )


def end_of_year_resync(district: District) -> ResyncRequest | None:
    """The latest full resync of the scoped year that started after the last data change:
    one that started before it may have read the records before they changed."""
    qs = full_resyncs(district, district.scope_year)
    changed = last_change(district)
    if changed is not None:
        qs = qs.filter(started_at__gt=changed)
    return qs.order_by("-finished_at").first()


def start_of_year_resync(district: District) -> ResyncRequest | None:
    """The first full resync of the scoped year after the last year switch."""
    if district.year_switched_at is None:
        return None
    qs = full_resyncs(district, district.scope_year).filter(started_at__gte=district.year_switched_at)
    return qs.order_by("finished_at").first()


def _end_of_year_or_refuse(district: District) -> ResyncRequest:
    request = end_of_year_resync(district)
    if request is None:
        year, changed = district.scope_year, last_change(district)
        deleted = District.objects.filter(pk=district.pk).values_list("records_deleted_at", flat=True).first()
        what = ", when records were deleted" if changed is not None and changed == deleted else ""
        since = (
            f" that started after its last data change ({timezone.localtime(changed):%Y-%m-%d %H:%M}{what})"
        )
        raise ResyncError(
            f"District {district.code} has no finished full resync of {year}{since if changed else ''}: "
            f"run the end-of-year full resync of {year} before switching to {year + 1}.",
            "year",
        )
    return request


def check_year_switch(district: District, user=None) -> YearSwitch:
    """May the district's scoped year move to the next one? The end-of-year rule: only
    once a full resync of the current year finished after its last data change."""
    if user is not None:
        rights.check_year_switch(user, district)
    return YearSwitch(district, district.scope_year, _end_of_year_or_refuse(district))


def do_year_switch(switch: YearSwitch) -> District:
    """Switch to the next school year and remind the district of the start-of-year resync."""
    with transaction.atomic():
        district = District.objects.select_for_update().get(pk=switch.district.pk)
        if district.scope_year != switch.from_year:
            raise ResyncError(f"District {district.code} already syncs {district.scope_year}.", "year")
        # Data may have changed since the check: the rule holds under the lock.
        end = _end_of_year_or_refuse(district)
        district.scope_year += 1
        district.year_switched_at = timezone.now()
        district.end_of_year_request = end
        district.save(update_fields=["scope_year", "year_switched_at", "end_of_year_request"])
        year = district.scope_year
        ProcessAlert.objects.notify(
            rights.alert_recipients(district),
            name=START_OF_YEAR_NEEDED,
            category=ProcessAlert.VERTICAL_INTEROPERABILITY,
            message=f"District {district.code} {district.name} now syncs school year {year - 1}-{year}: "
            f"run the start-of-year full resync of {year}.",
            link=reverse("admin:resync_tool", args=[district.code]),
            district=district,
        )
    return district
