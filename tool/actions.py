"""Where a resync starts: check_resync validates and authorises, do_request_resync stores.

check_* raises core.errors.ResyncError (bad input, naming it) or RightsError (a
missing right) and changes nothing; do_* changes data and sends events after
commit. The tool's pages, the API, the commands, Selective Sync and the year
switch all call these, so each rule is written once. Once stored, a request
runs through runner.lifecycle (its map says how).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertName, ProcessAlert
from audit.trail import record
from core import timefmt
from core.errors import ResyncError, RightsError
from history.models import DISBatchHistory, StepStatus
from resync import planner, rights
from resync.catalog import ALIASES
from resync.models import District, ResyncRequest, SyncObject, school_year_name
from runner import lifecycle


@dataclass(frozen=True)
class Checked:
    """A resync request check_resync (or check_selective_sync) allowed, ready to store."""

    district: District
    year: int
    objects: list[str] | None
    check_dependencies: bool
    plan: planner.Plan
    level: ResyncRequest.Level = ResyncRequest.Level.DISTRICT
    user: User | None = None
    records: list[int] | None = None  # Selective Sync: the one object's record ids


def level_for(user: User | None) -> ResyncRequest.Level:
    """The level of what `user` asks for: a state user's request is the state's (the
    district is alerted, not shown its objects). Only for one who may also see state
    requests (state R): else the requester could not see what they sent (their own
    answer would be a 404, or a 500 building it)."""
    state = user is not None and rights.may_send_state(user) and rights.is_state(user)
    return ResyncRequest.Level.STATE if state else ResyncRequest.Level.DISTRICT


def check_year(district: District, year: int | None) -> int:
    """The school year asked for (the district's scoped year when None), refused unless
    it is configured for the district. Resyncs and verifications both ask this."""
    year = district.scope_year if year is None else year
    if year not in district.years:
        allowed = ", ".join(str(y) for y in sorted(district.years))
        raise ResyncError(
            f"School year {year} is not configured for district {district.code}: choose {allowed}.", "year"
        )
    return year


def offered_names(district: District, year: int) -> set[str]:
    """The sync objects `district` may resync or verify for `year`."""
    return set(SyncObject.objects.offered(district, year).values_list("name", flat=True))


def check_objects_offered(district: District, year: int, names: list[str], offered: set[str]) -> None:
    """Refuse objects not `offered` to the district for `year`, naming them."""
    missing = [n for n in names if n not in offered]
    if missing:
        raise ResyncError(f"Not offered for district {district.code} in {year}: " + ", ".join(missing) + ".")


def check_resync(
    district: District,
    year: int | None,
    objects: list[str] | None,
    check_dependencies: bool,
    user: User | None = None,
    level: ResyncRequest.Level = ResyncRequest.Level.DISTRICT,
) -> Checked:
    """Validate and authorise a resync request; `objects=None` asks for a full resync.

    `user=None` is the system itself (an operator's command): no rights apply.
    Raises RightsError for a missing right, ResyncError for bad input.
    """
    if user is not None:
        rights.check_request(user, district, level)
    year = check_year(district, year)
    parents = SyncObject.objects.parents_map()
    offered = offered_names(district, year)
    names = None
    try:
        if objects is not None:
            names = planner.resolve(parents, objects, ALIASES)
            check_objects_offered(district, year, names, offered)
        plan = planner.plan(parents, offered, names, check_dependencies=check_dependencies)
    except planner.PlanError as e:
        raise ResyncError(str(e)) from None
    if user is not None:
        rights.check_objects(user, plan.order, plan.added)
    return Checked(district, year, names, check_dependencies, plan, level, user)


# A person's identical request within this many seconds of their last one is a double
# click, a resent form or a client's retry, not a wish to run it twice.
REPEAT_SECONDS = 10


def refuse_repeat(checked: Checked) -> None:
    """Refuse a user's request identical to one of theirs sent REPEAT_SECONDS ago or less
    that has not finished (the district's row lock is held: two clicks cannot both pass).
    Operators' commands (no user) and the benchmark are not people double-clicking."""
    if checked.user is None:
        return
    recent = ResyncRequest.objects.filter(
        district=checked.district,
        school_year=checked.year,
        level=checked.level,
        requested_by=checked.user,
        created_at__gte=timezone.now() - timedelta(seconds=REPEAT_SECONDS),
        status__in=ResyncRequest.ACTIVE,
    )
    for earlier in recent.only("objects_asked", "records", "check_dependencies"):
        same = (earlier.objects_asked, earlier.records, earlier.check_dependencies) == (
            checked.objects,
            checked.records,
            checked.check_dependencies,
        )
        if same:
            raise ResyncError(
                f"You sent the same resync of district {checked.district.code} for {checked.year} "
                f"seconds ago (request {earlier.pk}); it was not sent twice.",
                "objects",
            )


def do_request_resync(checked: Checked) -> ResyncRequest:
    """Store the request and its steps; start it unless the district and year are busy."""
    return do_request_resyncs([checked])[0]


def do_request_resyncs(checks: list[Checked]) -> list[ResyncRequest]:
    """Store several checked requests (a state request's districts) as do_request_resync
    stores one, all or none, in the order given: in one transaction, each under its
    district's lock (taken in id order, so two of these never deadlock), their steps in
    one INSERT and their alerts in one. Sending a state request of 100 districts one
    by one took 3.4 s, more than StateSync then took to move some of them (issue 16)."""
    names = {name for checked in checks for name in checked.plan.order}
    by_name = dict(SyncObject.objects.filter(name__in=names).values_list("name", "pk"))
    with transaction.atomic():
        # One request at a time per district: lock its row while deciding.
        locked = sorted({checked.district.pk for checked in checks})
        list(District.objects.select_for_update().filter(pk__in=locked).order_by("pk").values_list("pk"))
        sent = set()
        for checked in checks:
            refuse_repeat(checked)
            # The same twice in one call is a repeat too (stored one by one, the second
            # would have met the first).
            key = (
                checked.district.pk,
                checked.year,
                checked.level,
                tuple(checked.objects or ()),
                tuple(checked.records or ()),
                checked.check_dependencies,
            )
            if checked.user is not None and key in sent:
                raise ResyncError(
                    f"The same resync of district {checked.district.code} for {checked.year} was asked "
                    "for twice; it was not sent twice.",
                    "objects",
                )
            sent.add(key)
        requests = ResyncRequest.objects.bulk_create(
            ResyncRequest(
                district=checked.district,
                school_year=checked.year,
                objects_asked=checked.objects,
                records=checked.records,
                check_dependencies=checked.check_dependencies,
                level=checked.level,
                requested_by=checked.user,
            )
            for checked in checks
        )
        DISBatchHistory.objects.add_pending(
            [
                (request.pk, checked.district.pk, checked.year, by_name[name], i)
                for request, checked in zip(requests, checks, strict=True)
                for i, layer in enumerate(checked.plan.layers)
                for name in layer
            ]
        )
        running = set(
            ResyncRequest.objects.filter(
                district_id__in=locked, status=ResyncRequest.Status.RUNNING
            ).values_list("district_id", "school_year")
        )
        one_job = []
        for request in requests:
            if (request.district_id, request.school_year) not in running:
                if lifecycle.start(request, enqueue=False):
                    one_job.append(request.pk)
                running.add((request.district_id, request.school_year))
        lifecycle.queue_requests(one_job)
        alert_state_requests([r for r in requests if r.level == ResyncRequest.Level.STATE])
        for request, checked in zip(requests, checks, strict=True):
            # Here, once: every door (tool, admin, API, command, schedule) sends through this.
            record("request.sent", request, user=checked.user, level=request.level, detail=_asked(request))
    return requests


def _asked(request: ResyncRequest) -> str:
    what = ", ".join(request.objects_asked) if request.objects_asked else "full resync"
    return f"{school_year_name(request.school_year)}: {what}"


def alert_state_requests(requests: list[ResyncRequest]) -> None:
    """Tell each district's users and the state's that the state asked for a resync.

    The district may not learn which objects the state asked for: the alert
    names the district and year only, for district and state users alike.
    """
    if not requests:  # a district's own request: no query for nobody's recipients
        return
    alerts = []
    recipients = rights.alert_recipients_of([r.district for r in requests])
    for request in requests:
        district = request.district
        fields = {
            "name": AlertName.STATE_RESYNC_REQUESTED,
            "category": ProcessAlert.VERTICAL_INTEROPERABILITY,
            "message": f"The state requested a resync of district {district} for "
            f"{school_year_name(request.school_year)}, {timefmt.when(request.created_at, district)}.",
            "link": reverse("admin:resync_tool", args=[district.code]),
            "district": district,
            "request": request,
        }
        alerts += [ProcessAlert(user=user, **fields) for user in recipients[district.pk]]
    ProcessAlert.objects.notify_all(alerts)


# ---- cancelling a waiting request (issue 14, item 4) --------------------------------


def check_cancel(request: ResyncRequest, user: User | None = None) -> None:
    """May `user` cancel `request` now? Only a waiting request (none of its steps has run).

    `user=None` is an operator's command. A state administrator (state R and W) may
    cancel any request; at the district, a request of the district level, by the user
    who sent it or one holding the tool right for each of its objects (who could have
    sent it). A district user never learns a state request exists: the doors look it
    up among what the user may see (404); this refuses it too, in the same words.
    """
    if user is not None and not rights.may_see_request(user, request):
        raise RightsError(f"No resync request {request.pk} among those you may see.")
    if request.status != ResyncRequest.Status.WAITING:
        raise ResyncError(
            f"Request {request.pk} is {request.get_status_display().lower()}: only a waiting request "
            "(none of its steps started) can be cancelled.",
            "request",
        )
    if user is None or (rights.is_state(user) and rights.may_send_state(user)):
        return
    if request.level == ResyncRequest.Level.STATE:
        raise RightsError("Cancelling a state resync request needs the state resync R and W rights.")
    if request.requested_by_id == user.pk:
        return
    names = set(request.steps.values_list("sync_object__name", flat=True))
    missing = sorted(names - rights.object_names(user))
    if missing:
        raise RightsError(
            f"Only the user who sent request {request.pk}, or one with the tool right for each of its "
            "objects, may cancel it: you have none for " + ", ".join(missing) + "."
        )


def do_cancel(request: ResyncRequest, user: User | None = None) -> ResyncRequest:
    """Cancel a waiting request: it is kept (status cancelled, who and when, what it asked)
    and its steps, which never ran, are deleted, so the tool shows no pending row for
    them and no worker can take one. Checked again under the district's lock, the one
    start() runs under: a request that started meanwhile is refused, never half-cancelled.
    """
    with transaction.atomic():
        District.objects.select_for_update().only("pk").get(pk=request.district_id)
        request = ResyncRequest.objects.select_related("district", "requested_by").get(pk=request.pk)
        check_cancel(request, user)
        DISBatchHistory.objects.filter(request=request, status=StepStatus.PENDING).delete()
        request.status = ResyncRequest.Status.CANCELLED
        request.cancelled_by = user
        request.cancelled_at = timezone.now()
        request.save(update_fields=["status", "cancelled_by", "cancelled_at"])
        # A waiting request waits for a running one, which starts the next when it ends.
        # One waiting with nothing running (its wake-up lost) must not hold the others.
        running = ResyncRequest.objects.filter(
            district_id=request.district_id,
            school_year=request.school_year,
            status=ResyncRequest.Status.RUNNING,
        )
        if not running.exists():
            lifecycle.start_next(request.district_id, request.school_year)
        if request.requested_by_id and request.requested_by_id != getattr(user, "pk", None):
            alert_cancelled(request)
        record("request.cancelled", request, user=user, level=request.level, detail=_asked(request))
    return request


def alert_cancelled(request: ResyncRequest) -> None:
    """Tell the requester someone else withdrew their request (a state administrator, an
    operator, a colleague at the district)."""
    district = request.district
    who = request.cancelled_by.username if request.cancelled_by else "an operator"
    ProcessAlert.objects.notify(
        [request.requested_by],
        name=AlertName.RESYNC_CANCELLED,  # its own name: mail and webhooks choose it apart from finishes
        category=ProcessAlert.VERTICAL_INTEROPERABILITY,
        message=f"{request} was cancelled by {who} before it started.",
        link=reverse("admin:resync_resyncrequest_change", args=[request.pk]),
        district=district,
        request=request,
    )
