"""The Resync State Data tool pages in the admin: district and state level.

Views validate, call one action, respond; what they show comes from querysets.
tool.admin wires them as pages of the District and ResyncRequest admins. A
JSON answer refuses as the API does (core.errors.status_for): a missing right
is 403, bad input 400.
"""

from __future__ import annotations

import django_rq
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from rq import Worker

from core import timefmt
from core.errors import REFUSALS, ResyncError, RightsError, log_refusal, status_for
from core.parsers import is_whole_number
from history.models import DISBatchHistory
from resync import rights
from resync.models import District, ResyncRequest, SyncObject

from . import actions, progress


def district_or_404(user, code: str | None, what: str) -> District:
    """The district `code` among the user's, for an admin page or form (`what` names it).

    404, not 403: a district user may not even learn another district's code exists.
    A code that does exist is a refused right, and logged as one."""
    district = rights.district_named(user, code)
    if district is None:
        if code and District.objects.filter(code=code).exists():
            log_refusal(user, "admin", f"{what} of district {code}")
        raise Http404("No such district.")
    return district


def refused(user, error: Exception, what: str) -> None:
    """Log a check_* refusal for a missing right; bad input is the user's mistake, and
    names itself to them."""
    if isinstance(error, RightsError):
        log_refusal(user, "admin", f"{what}: {error}")


def _year(request: HttpRequest, district: District) -> int:
    raw = request.GET.get("year") or request.POST.get("year") or district.scope_year
    try:
        year = int(raw)
    except (TypeError, ValueError):
        raise Http404(f"Year {raw!r} is not a number.") from None
    return year if year in district.years else district.scope_year


def wants_json(request: HttpRequest) -> bool:
    """The tool's script sends without leaving the page and asks for JSON."""
    return request.headers.get("Accept") == "application/json"


def rows(user, district: District, year: int) -> list[dict]:
    """One row per object offered for `year`, with its latest batch step as the user may
    see it: a Selective Sync's few records never stand for the object's result."""
    objects = list(SyncObject.objects.offered(district, year).prefetch_related("parents"))
    history = DISBatchHistory.objects.visible_to(user).filter(district=district, school_year=year)
    latest = progress.batch_steps(history).latest_per_object()
    allowed = rights.object_names(user)
    return [
        {
            "object": o,
            "parents": ", ".join(p.name for p in o.parents.all() if p.enabled),
            "step": (step := latest.get(o.pk)),
            "allowed": o.name in allowed,
            **row_state(step),
        }
        for o in objects
    ]


def row_state(step: DISBatchHistory | None) -> dict:
    """A row's dot, its word, and for a Yellow or Red result the Error Log of its errors."""
    colour, label = progress.colour_label(step)
    errors = step is not None and step.finished and colour in ("yellow", "red") and step.errors > 0
    return {
        "colour": colour,
        "label": label,
        "error_log": progress.error_log_url(step.request_id, step.sync_object_id) if errors else "",
    }


def current_requests(user, district: District, year: int) -> list[progress.Progress]:
    """The district and year's batch requests waiting or running, else its latest one
    (its summary), as the user may see them: never a state request for a district user."""
    batch = rights.visible(
        user,
        ResyncRequest.objects.filter(district=district, school_year=year, records__isnull=True),
        level="level",
    )
    active = list(batch.filter(status__in=[ResyncRequest.Status.WAITING, ResyncRequest.Status.RUNNING]))
    # A cancelled request never ran: its "summary" would hide the last one that did.
    ended = batch.exclude(status=ResyncRequest.Status.CANCELLED)
    shown = sorted(active, key=lambda r: r.pk) or list(ended.order_by("-id")[:1])
    found = progress.of(shown)
    return [found[r.pk] for r in shown]


@require_http_methods(["GET", "POST"])
def district_tool(request: HttpRequest, code: str, admin_site) -> HttpResponse:
    district = district_or_404(request.user, code, "the Resync State Data tool")
    year = _year(request, district)
    if request.method == "POST":
        full = request.POST.get("full") == "1"
        try:
            checked = actions.check_resync(
                district,
                parse_year(request.POST.get("year")),
                None if full else request.POST.getlist("objects"),
                request.POST.get("check_dependencies") == "1",
                user=request.user,
            )
            req = actions.do_request_resync(checked)
        except REFUSALS as e:
            refused(request.user, e, f"a resync of district {district.code}")
            if wants_json(request):
                return JsonResponse({"error": str(e)}, status=status_for(e))
            messages.error(request, str(e))
        else:
            sent = f"Resync {req.pk} sent: {len(checked.plan.order)} object(s)."
            if wants_json(request):
                return JsonResponse({"request": req.pk, "message": sent, "order": list(checked.plan.order)})
            messages.success(request, sent)
        return redirect(f"{reverse('admin:resync_tool', args=[code])}?year={year}")
    context = {
        **admin_site.each_context(request),
        "title": f"Resync State Data: {district}",
        "district": district,
        "year": year,
        "rows": (shown := rows(request.user, district, year)),
        "explain": explain(district, year, shown),
        "progress": current_requests(request.user, district, year),
        "live": {"district": district.pk, "year": year},
    }
    return TemplateResponse(request, "admin/resync/tool.html", context)


def tool_state(request: HttpRequest, code: str, admin_site) -> JsonResponse:
    """The district tool's rows as they stand now, for a page whose live socket (re)opened:
    pushes sent while it was closed are lost, and this is what they would have shown.
    The same rows() as the page, so the same rights: never a state request's steps for a
    district user."""
    district = district_or_404(request.user, code, "the Resync State Data tool")
    year = _year(request, district)
    steps = [
        {
            "step": step.pk,
            "object": row["object"].name,
            "request": step.request_id,
            "status": step.status,
            "processed": step.processed,
            "errors": step.errors,
            "colour": step.colour,
            "started_at": step.started_at.isoformat() if step.started_at else None,
            "started_at_text": timefmt.when(step.started_at, district),
        }
        for row in rows(request.user, district, year)
        if (step := row["step"]) is not None
    ]
    shown = current_requests(request.user, district, year)
    return JsonResponse(
        {
            "district": district.pk,
            "year": year,
            "steps": steps,
            "progress": [p.as_json() for p in shown],
            # Drawn by the page's own template, so a live block reads as a reloaded one.
            "progress_html": "".join(render_to_string("admin/resync/progress.html", {"p": p}) for p in shown),
        }
    )


# A district's latest request on the state tool: a cancelled one never ran, and must not
# hide the one that runs or last ran.
LAST_REQUEST = Max("requests__id", filter=~Q(requests__status=ResyncRequest.Status.CANCELLED))


def state_tool_state(request: HttpRequest, admin_site) -> JsonResponse:
    """The state tool's rows as they stand now (each district's latest request), for a
    page whose live socket (re)opened."""
    if not rights.is_state(request.user):
        log_refusal(request.user, "admin", "the Resync State Data (State) tool")
        raise Http404("Only state users see the state-level tool.")
    districts = list(rights.districts(request.user).annotate(last_request=LAST_REQUEST))
    last = ResyncRequest.objects.in_bulk([d.last_request for d in districts if d.last_request])
    latest = [(d, last[d.last_request]) for d in districts if d.last_request in last]
    return JsonResponse(
        {
            "districts": [
                {"district": d.pk, "request": r.pk, "status": r.status, "outcome": r.outcome}
                for d, r in latest
            ]
        }
    )


def plan_preview(request: HttpRequest, code: str, admin_site) -> JsonResponse:
    """What Send Resync would run, in order: the same check the send does."""
    district = district_or_404(request.user, code, "the Resync State Data tool")
    year = _year(request, district)
    full = request.GET.get("full") == "1"
    try:
        checked = actions.check_resync(
            district,
            year,
            None if full else request.GET.getlist("objects"),
            request.GET.get("check_dependencies") == "1",
            user=request.user,
        )
    except REFUSALS as e:
        refused(request.user, e, f"a resync plan of district {district.code}")
        return JsonResponse({"error": str(e)}, status=status_for(e))
    return JsonResponse({"order": list(checked.plan.order), "added": list(checked.plan.added)})


def parse_year(raw: str | None) -> int | None:
    """A form's year: blank for none, else ASCII digits (int() would also take '２０２７',
    '+2027' and '2_027', which no year box means)."""
    if raw in (None, ""):
        return None
    text = raw.strip()
    if not is_whole_number(text):
        raise ResyncError(f"Year {raw!r} is not a number.", "year")
    return int(text)


@require_http_methods(["GET", "POST"])
def state_tool(request: HttpRequest, admin_site) -> HttpResponse:
    if not rights.is_state(request.user):
        log_refusal(request.user, "admin", "the Resync State Data (State) tool")
        raise Http404("Only state users see the state-level tool.")
    districts = rights.districts(request.user).select_related("state").annotate(last_request=LAST_REQUEST)
    if request.method == "POST":
        codes = request.POST.getlist("districts")
        full = request.POST.get("full") == "1"
        if not codes:
            messages.error(request, "Pick at least one district.")
        sent = 0
        for d in districts.filter(code__in=codes):
            try:
                checked = actions.check_resync(
                    d,
                    parse_year(request.POST.get("year")),
                    None if full else request.POST.getlist("objects"),
                    request.POST.get("check_dependencies") == "1",
                    user=request.user,
                    level=ResyncRequest.Level.STATE,
                )
                actions.do_request_resync(checked)
                sent += 1
            except REFUSALS as e:
                refused(request.user, e, f"a state resync of district {d.code}")
                messages.error(request, f"District {d.code}: {e}")
        if sent:
            messages.success(request, f"State resync requested for {sent} district(s).")
        return redirect("admin:resync_state_tool")
    districts = list(districts)
    last = ResyncRequest.objects.in_bulk([d.last_request for d in districts if d.last_request])
    context = {
        **admin_site.each_context(request),
        "title": "Resync State Data (State)",
        "rows": [{"district": d, "request": last.get(d.last_request)} for d in districts],
        **state_choices(districts),
        "live": {"state": True},
    }
    return TemplateResponse(request, "admin/resync/state_tool.html", context)


def agent_queue(request: HttpRequest, admin_site) -> HttpResponse:
    """Agent Queue: requests and steps waiting or running, and RQ's own view of the queue."""
    if not (rights.is_state(request.user) or rights.districts(request.user).exists()):
        raise Http404("No districts to show.")
    active = rights.visible(
        request.user,
        ResyncRequest.objects.filter(status__in=ResyncRequest.ACTIVE).select_related("district"),
        level="level",
    )
    steps = (
        DISBatchHistory.objects.filter(request__in=active, status__in=["queued", "running"])
        .select_related("sync_object", "district")
        .order_by("request_id", "layer", "id")
    )
    queue = django_rq.get_queue(settings.RQ_QUEUE)
    rq_state = (
        {
            "queued": queue.count,
            "started": queue.started_job_registry.count,
            "failed": queue.failed_job_registry.count,
            "workers": [
                {"name": w.name, "state": w.get_state(), "job": (w.get_current_job_id() or "")}
                for w in Worker.all(queue=queue)
            ],
        }
        if rights.is_state(request.user)
        else None
    )
    requests = list(active.order_by("id"))
    found = progress.of(requests)
    context = {
        **admin_site.each_context(request),
        "title": "Agent Queue",
        "requests": [(r, found[r.pk]) for r in requests],
        "steps": steps,
        "rq": rq_state,
    }
    return TemplateResponse(request, "admin/resync/agent_queue.html", context)


@require_http_methods(["GET", "POST"])
def cancel_request(request: HttpRequest, req: ResyncRequest, model_admin) -> HttpResponse:
    """Cancel a waiting request: GET says what will happen (as Django's delete
    confirmation does), POST cancels through the same check_cancel/do_cancel as the
    API and resync_cancel. A refusal is the same page naming why, at its status."""
    if not model_admin.has_view_permission(request, req):
        raise PermissionDenied
    page = reverse("admin:resync_resyncrequest_change", args=[req.pk])
    refusal, status = "", 200
    try:
        actions.check_cancel(req, request.user)
        if request.method == "POST":
            actions.do_cancel(req, request.user)
            messages.success(request, f"Request {req.pk} cancelled: none of its steps will run.")
            return HttpResponseRedirect(page, status=303)
    except REFUSALS as e:
        refused(request.user, e, f"cancelling request {req.pk}")
        refusal, status = str(e), status_for(e)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Cancel resync request {req.pk}?",
        "opts": model_admin.opts,
        "original": req,
        "steps": req.steps.select_related("sync_object").order_by("layer", "sync_object__name"),
        "refusal": refusal,
        "page": page,
    }
    return TemplateResponse(
        request, "admin/resync/resyncrequest/cancel_confirmation.html", context, status=status
    )


def explain(district: District, year: int, shown: list[dict]) -> dict:
    """What the district tool says about the rows it shows (issue 14, item 10): why a
    previous or next year offers only some objects, and what a user holding the tool
    right for only some objects may send (no full resync; Check Dependencies refused
    when it would add a parent they may not resync)."""
    names = [r["object"].name for r in shown]
    allowed = [r["object"].name for r in shown if r["allowed"]]
    out: dict = {"all_allowed": len(allowed) == len(names), "allowed": allowed, "offered": len(names)}
    if year != district.scope_year:
        scoped = SyncObject.objects.offered(district, district.scope_year).values_list("name", flat=True)
        out["scoped_only"] = [n for n in scoped if n not in set(names)]
    if not out["all_allowed"]:
        # Every ancestor Check Dependencies would add (among the objects offered), from the
        # rows' prefetched parents: no query.
        up = {r["object"].name: [p.name for p in r["object"].parents.all()] for r in shown}
        seen, todo = set(), [p for n in allowed for p in up[n]]
        while todo:
            name = todo.pop()
            if name in up and name not in seen:
                seen.add(name)
                todo.extend(up[name])
        out["parents_refused"] = [n for n in names if n in seen and n not in allowed]
    return out


def state_choices(districts: list[District]) -> dict:
    """The state tool's objects and years (issue 14, item 10): only objects of the editions
    of the districts' states (an edition-only object of another state is never offered),
    and the years the districts resync, each with the districts it is theirs for."""
    editions = {d.state.edition for d in districts if d.state.edition}
    mine = Q(editions="")
    for edition in editions:
        mine |= Q(editions__regex=rf"(^|,){edition}(,|$)")
    years: dict[int, list[str]] = {}
    for d in districts:
        for y in d.years:
            years.setdefault(y, []).append(d.code)
    return {
        "objects": SyncObject.objects.enabled().filter(mine),
        "years": [
            {"year": y, "codes": codes, "all": len(codes) == len(districts)}
            for y, codes in sorted(years.items())
        ],
    }
