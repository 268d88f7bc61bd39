"""The history chart pages: one district's, and the state's across its districts.

dashboard.admin wires them as pages of the state dashboard's ModelAdmin (signed-in
staff only); the rights are checked here, as the tool pages check theirs.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from core.errors import log_refusal
from resync import rights
from resync.models import District
from tool.views import district_or_404

from . import history


def _year(request: HttpRequest, years: list[int]) -> int | None:
    """The ?year= asked for, among `years`; none (every year) when not asked."""
    raw = request.GET.get("year") or ""
    if not raw:
        return None
    if not raw.isdigit() or int(raw) not in years:
        raise Http404(f"Year {raw[:10]!r} is not one of {', '.join(map(str, years))}.")
    return int(raw)


def _page(request: HttpRequest, admin_site, districts, offered: set[int], **context) -> HttpResponse:
    years = history.years(request.user, districts, offered)
    year = _year(request, years)
    context = {
        **admin_site.each_context(request),
        **context,
        "year": year,
        "years": years,
        "objects": history.object_charts(request.user, districts, year),
        "durations": history.duration_charts(request.user, districts, year),
    }
    return TemplateResponse(request, "admin/dashboard/history.html", context)


@require_GET
def district_history(request: HttpRequest, code: str, admin_site) -> HttpResponse:
    district = district_or_404(request.user, code, "the history chart")
    return _page(
        request,
        admin_site,
        District.objects.filter(pk=district.pk),
        set(district.years),
        district=district,
        title=f"Resync history: {district}",
    )


@require_GET
def state_history(request: HttpRequest, admin_site) -> HttpResponse:
    # 404, as for a district a user may not see: a district user does not learn the page exists.
    if not rights.is_state(request.user):
        log_refusal(request.user, "admin", "the state's history chart")
        raise Http404("Not found.")
    districts = rights.districts(request.user)
    listed = list(districts.only("code", "name", "scope_year", "sync_previous_year", "sync_next_year"))
    return _page(
        request,
        admin_site,
        districts,
        {y for d in listed for y in d.years},
        districts_listed=listed,
        title="Resync history: every district",
    )
