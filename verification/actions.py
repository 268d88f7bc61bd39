"""Every verification operation has one home here, as tool.actions is for resyncs.

check_* validates and authorises (RightsError, ResyncError naming the problem);
do_* writes. The admin and the API call these; run_verification_job is the RQ job.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from dataclasses import dataclass

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertName, ProcessAlert
from core import events, timefmt
from core.errors import ResyncError, RightsError
from resync import planner, rights
from resync.catalog import ALIASES
from resync.models import District, ResyncRequest, SyncObject, school_year_name
from runner import jobs
from tool import actions

from . import compare
from . import rights as verification_rights
from .models import DISVerificationDifference, DISVerificationResult, VerificationRun

log = logging.getLogger(__name__)

KEPT_PER_OBJECT = 10_000  # difference rows kept per object; the counts stay exact
PROGRESS_SECONDS = 1.0


@dataclass(frozen=True)
class CheckedVerification:
    district: District
    year: int
    objects: list[str]
    user: object = None
    level: str = ResyncRequest.Level.DISTRICT


def check_verification(
    district: District, year: int | None, objects: list[str] | None, user=None
) -> CheckedVerification:
    """Validate and authorise a verification; `objects=None` compares every object offered
    for the year that the user holds the tool right for."""
    if user is not None:
        verification_rights.check_verification(user, district)
    year = actions.check_year(district, year)
    parents = SyncObject.objects.parents_map()
    names = _objects_to_verify(district, year, objects, user, parents)
    busy = ResyncRequest.objects.filter(
        district=district,
        school_year=year,
        status__in=(ResyncRequest.Status.RUNNING, ResyncRequest.Status.WAITING),
    )
    if busy.exists():
        # The two stores are read at different moments: mid-resync they differ by design.
        raise ResyncError(
            f"A resync of district {district.code} for {year} is under way: verify once it finishes.", "year"
        )
    order = [n for layer in planner.depth_layers(parents, names) for n in layer]
    # A state user's verification is the state's, as their resync requests are.
    return CheckedVerification(district, year, order, user, actions.level_for(user))


def _objects_to_verify(district: District, year: int, objects: list[str] | None, user, parents) -> list[str]:
    """The objects asked for (any case, aliases resolved), each offered and within the
    user's tool rights; None asks for every such object. Never empty."""
    offered = actions.offered_names(district, year)
    allowed = rights.object_names(user) if user is not None else offered
    if objects is None:
        names = sorted(offered & allowed)
    else:
        try:
            names = planner.resolve(parents, objects, ALIASES)
        except planner.PlanError as e:
            raise ResyncError(str(e)) from None
        actions.check_objects_offered(district, year, names, offered)
        refused = [n for n in names if n not in allowed]
        if refused:
            raise RightsError("You have no tool right to verify " + ", ".join(refused) + ".")
    if not names:
        raise ResyncError("Select at least one sync object to verify.")
    return names


def do_request_verification(checked: CheckedVerification) -> VerificationRun:
    """Store the run and queue its job (once the transaction commits)."""
    with transaction.atomic():
        run = VerificationRun.objects.create(
            district=checked.district,
            school_year=checked.year,
            level=checked.level,
            sync_objects=checked.objects,
            requested_by=checked.user,
            queued_at=timezone.now(),
        )
        # Named after the run, as steps are: recovery finds a lost job in one lookup.
        django_rq.get_queue(settings.RQ_QUEUE).enqueue(
            run_verification_job, run.pk, job_id=run_job_id(run.pk)
        )
    return run


def run_job_id(run_id: int) -> str:
    return f"verification-{run_id}"


def claim(run_id: int, worker: str) -> VerificationRun | None:
    """Take a queued run for this worker; None if another took it or it is no longer queued."""
    now = timezone.now()
    taken = VerificationRun.objects.filter(pk=run_id, status=VerificationRun.Status.QUEUED).update(
        status=VerificationRun.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker,
        attempts=F("attempts") + 1,
    )
    if not taken:
        return None
    run = VerificationRun.objects.select_related("district", "requested_by").get(pk=run_id)
    push_run(run)
    return run


def run_verification_job(run_id: int) -> None:
    """The RQ job of one run: claim it, compare, finish it (failed, naming the error,
    if anything raised)."""
    run = claim(run_id, jobs.worker_name())
    if run is None:
        log.info("verification %s is not queued any more; skipping", run_id)
        return
    try:
        run_verification(run)
    except Exception as e:
        log.exception("verification %s failed", run_id)
        run = VerificationRun.objects.select_related("district", "requested_by").get(pk=run_id)
        do_finish_run(run, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")


def run_verification(run: VerificationRun) -> VerificationRun:
    """Compare every object of a claimed run, storing results and differences as it goes."""
    if run.requested_by is not None:
        try:
            verification_rights.check_verification(run.requested_by, run.district)
        except RightsError as e:
            return do_finish_run(run, f"Refused at run time: {e}")
    chunk = settings.RESYNC_CHUNK
    by_name = SyncObject.objects.in_bulk(run.sync_objects, field_name="name")
    for name in run.sync_objects:
        verify_object(run, by_name[name], chunk)
        run.objects_done += 1
        VerificationRun.objects.filter(pk=run.pk).update(
            objects_done=run.objects_done, records_compared=run.records_compared, heartbeat_at=timezone.now()
        )
        push_run(run)
    return do_finish_run(run)


def verify_object(run: VerificationRun, obj: SyncObject, chunk: int) -> DISVerificationResult:
    result = DISVerificationResult.objects.create(run=run, sync_object=obj)
    counts: Counter = Counter()
    buffer: list[DISVerificationDifference] = []
    kept, last_write = 0, time.monotonic()
    for item in compare.compare(run.district, obj, run.school_year, chunk, run.level):
        # Matching records come in bulk counts: they cost nothing each here.
        if type(item) is compare.Matched:
            counts[compare.MATCHING] += item.count
            run.records_compared += item.count
        else:
            counts[item.kind] += 1
            run.records_compared += 1
            if kept < KEPT_PER_OBJECT:
                kept += 1
                buffer.append(
                    DISVerificationDifference(
                        result=result,
                        kind=item.kind,
                        record_id=item.record_id,
                        reason=item.reason,
                        detail=item.detail,
                    )
                )
                if len(buffer) >= chunk:
                    DISVerificationDifference.objects.bulk_create(buffer)
                    buffer = []
        if time.monotonic() - last_write >= PROGRESS_SECONDS:
            last_write = time.monotonic()
            VerificationRun.objects.filter(pk=run.pk).update(
                records_compared=run.records_compared, heartbeat_at=timezone.now()
            )
            push_run(run)
    DISVerificationDifference.objects.bulk_create(buffer)
    Kind = DISVerificationDifference.Kind
    result.only_district = counts[Kind.ONLY_DISTRICT]
    result.only_state = counts[Kind.ONLY_STATE]
    result.different = counts[Kind.DIFFERENT]
    result.not_allowed = counts[Kind.NOT_ALLOWED]
    result.matching = counts[compare.MATCHING]
    result.truncated = kept < sum(counts.values()) - result.matching
    result.save()
    return result


def do_finish_run(run: VerificationRun, failure: str = "") -> VerificationRun:
    run.status = VerificationRun.Status.FAILED if failure else VerificationRun.Status.FINISHED
    run.message = failure[:2000]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "message", "finished_at", "objects_done", "records_compared"])
    found, refused = VerificationRun.objects.with_totals().values_list("differing", "refused").get(pk=run.pk)
    # The runs list's totals follow too: they are final now.
    push_run(run, {"to_resync": found, "not_allowed": refused})
    if run.requested_by_id:
        outcome = f"failed: {failure[:200]}" if failure else f"finished: {found} difference(s) to resync"
        ProcessAlert.objects.notify(
            [run.requested_by],
            name=AlertName.VERIFICATION_FINISHED,
            category=ProcessAlert.VERTICAL_INTEROPERABILITY,
            message=f"Verification of {run.district} for {school_year_name(run.school_year)}, started "
            f"{timefmt.when(run.created_at, run.district)}, {outcome}.",
            link=reverse("admin:verification_verificationrun_change", args=[run.pk]),
            district=run.district,
        )
    return run


def run_event(run: VerificationRun, totals: dict | None = None) -> dict:
    return (totals or {}) | {
        "type": "verification.progress",
        "run": run.pk,
        "district": run.district_id,
        "status": run.status,
        "status_display": run.get_status_display(),
        "objects_done": run.objects_done,
        "objects": len(run.sync_objects),
        "records_compared": run.records_compared,
        "progress": run.progress,
    }


def run_groups(run: VerificationRun) -> list[str]:
    """The groups of the users who may see `run`: a state run is the state's alone."""
    if run.level == ResyncRequest.Level.STATE:
        return [events.VERIFICATION_STATE_GROUP]
    return events.verification_groups(run.district_id)


def push_run(run: VerificationRun, totals: dict | None = None) -> None:
    """A run's progress (and, when it ends, its totals) to the users who may see the run,
    once the write commits."""
    events.send(run_groups(run), run_event(run, totals))


def recover_stale_runs() -> list[int]:
    """Recover runs as runner.recovery.recover_stale_steps recovers steps: a running run
    whose worker died is queued again from scratch, and failed with the reason after
    MAX_ATTEMPTS; a queued run whose RQ job was lost is enqueued again.
    Returns the ids of the runs it touched."""
    now = timezone.now()
    touched = []
    Status = VerificationRun.Status
    running_runs = VerificationRun.objects.filter(status=Status.RUNNING)
    for run in running_runs.select_related("district", "requested_by"):
        if not jobs.worker_dead(run.worker, run.heartbeat_at, now):
            continue
        running = VerificationRun.objects.filter(pk=run.pk, status=Status.RUNNING, worker=run.worker)
        if run.attempts < jobs.MAX_ATTEMPTS:
            with transaction.atomic():
                if running.update(
                    status=Status.QUEUED, worker="", queued_at=now, objects_done=0, records_compared=0
                ):
                    # What the dead worker compared is incomplete: the next attempt starts over.
                    DISVerificationResult.objects.filter(run=run).delete()
                    jobs.requeue_job(run_verification_job, run.pk, run_job_id(run.pk))
                    # Open pages would show the dead attempt's progress until the next claim.
                    dead = run.worker
                    run.status, run.worker, run.objects_done, run.records_compared = Status.QUEUED, "", 0, 0
                    push_run(run)
                    touched.append(run.pk)
                    log.warning("re-queued verification %s: its worker %s died", run.pk, dead)
        # Clearing the worker claims the run, so two recoverers never both fail it.
        elif running.update(worker=""):
            run.refresh_from_db()
            do_finish_run(
                run,
                f"The worker died {run.attempts} times while running this verification "
                "(stopped or killed, out of memory, or its host lost): run it again.",
            )
            touched.append(run.pk)
            log.warning("failed verification %s: its worker died %s times", run.pk, run.attempts)
    queued = VerificationRun.objects.filter(status=Status.QUEUED)
    return touched + jobs.requeue_lost(queued, run_verification_job, run_job_id, now)


def differing_objects(run: VerificationRun) -> list[str]:
    """The objects where a resync would change something, parents first."""
    results = DISVerificationResult.objects.filter(run=run).select_related("sync_object").order_by("id")
    return [r.sync_object.name for r in results if r.differences_count]


def check_verification_resync(run: VerificationRun, user=None) -> actions.Checked:
    """The one-click resync: exactly the objects that differ, with Check Dependencies."""
    if user is not None and not rights.may_resync(user, run.district):
        raise RightsError(f"You have no right to resync district {run.district.code}.")
    if user is not None and not rights.level_shown(run.level, rights.is_state(user)):
        # The doors answer 404 before this; a caller that did not must not act on it either.
        raise RightsError(f"No verification {run.pk} among those you may see.")
    if run.status != VerificationRun.Status.FINISHED:
        raise ResyncError(f"Verification {run.pk} has not finished: it is {run.get_status_display()}.")
    names = differing_objects(run)
    if not names:
        raise ResyncError(f"Verification {run.pk} found nothing a resync would fix.")
    # The state's run resyncs as the state whoever sends it (the system too): a district
    # request would show the district the objects the state's verification found.
    state = run.level == ResyncRequest.Level.STATE
    level = ResyncRequest.Level.STATE if state else actions.level_for(user)
    return actions.check_resync(run.district, run.school_year, names, True, user=user, level=level)


def do_verification_resync(run: VerificationRun, checked: actions.Checked) -> ResyncRequest:
    with transaction.atomic():
        request = actions.do_request_resync(checked)
        VerificationRun.objects.filter(pk=run.pk).update(resync_request=request)
    run.resync_request = request
    return request
