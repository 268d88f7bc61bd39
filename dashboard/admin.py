"""The state's dashboard: every district in one change list, with its last full
resync, that resync's outcome and errors, and the year's mandatory full resyncs, as
yearswitch.actions finds them (with_year_resyncs, may_switch: the rule has one home).
Its pages also hold the history charts (dashboard.views)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from core import timefmt
from core.admin import ReadOnly
from core.errors import log_refusal
from history.models import DISBatchHistory
from resync import rights
from resync.models import ResyncRequest
from tool.admin import AdminPages
from yearswitch import actions
from yearswitch.actions import NEVER

from . import charts, views
from .models import DistrictOutcome

OUTCOMES = [("green", "Green"), ("yellow", "Yellow"), ("red", "Red"), ("never", "No full resync")]


def last_full_resyncs():
    """The district's finished full resyncs (any level, any year), latest first."""
    return ResyncRequest.objects.filter(
        district=OuterRef("pk"),
        objects_asked__isnull=True,
        records__isnull=True,
        status=ResyncRequest.Status.FINISHED,
    ).order_by("-finished_at", "-id")


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome of the last full resync"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return OUTCOMES

    def queryset(self, request, queryset):
        if self.value() == "never":
            return queryset.filter(last_full_id__isnull=True)
        if self.value() in {"green", "yellow", "red"}:
            return queryset.filter(last_outcome=self.value())
        return queryset


class StartOfYearFilter(admin.SimpleListFilter):
    title = "start-of-year resync"
    parameter_name = "start_of_year"

    def lookups(self, request, model_admin):
        return [("done", "Done"), ("missing", "Missing"), ("never", "Never switched")]

    def queryset(self, request, queryset):
        if self.value() == "done":
            return queryset.filter(start_of_year_id__isnull=False)
        if self.value() == "missing":
            return queryset.filter(year_switched_at__isnull=False, start_of_year_id__isnull=True)
        if self.value() == "never":
            return queryset.filter(year_switched_at__isnull=True)
        return queryset


class EndOfYearFilter(admin.SimpleListFilter):
    title = "end-of-year resync"
    parameter_name = "end_of_year"

    def lookups(self, request, model_admin):
        return [("done", "Done"), ("missing", "Missing")]

    def queryset(self, request, queryset):
        if self.value() in {"done", "missing"}:
            return queryset.filter(end_of_year_id__isnull=self.value() == "missing")
        return queryset


@admin.register(DistrictOutcome)
class DistrictOutcomeAdmin(AdminPages, ReadOnly, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "scope_year",
        "last_full",
        "outcome",
        "errors",
        "end_of_year",
        "start_of_year",
        "ready",
        "history_link",
    ]
    list_display_links = None
    list_filter = [OutcomeFilter, EndOfYearFilter, StartOfYearFilter, "scope_year", "state"]
    search_fields = ["code", "name"]
    ordering = ["code"]
    change_list_template = "admin/dashboard/districtoutcome/change_list.html"
    actions = None

    def get_urls(self) -> list[URLPattern]:
        return [
            self.page("history/", self.state_history_view, "dashboard_state_history"),
            self.page("history/<str:code>/", self.district_history_view, "dashboard_history"),
            *super().get_urls(),
        ]

    def state_history_view(self, request: HttpRequest) -> HttpResponse:
        return views.state_history(request, self.admin_site)

    def district_history_view(self, request: HttpRequest, code: str) -> HttpResponse:
        return views.district_history(request, code, self.admin_site)

    def get_queryset(self, request):
        last = last_full_resyncs()
        errors = (
            DISBatchHistory.objects.filter(request=OuterRef("last_full_id"))
            .values("request")
            .annotate(n=Sum("errors"))
            .values("n")
        )
        qs = actions.with_year_resyncs(
            super().get_queryset(request).filter(pk__in=rights.districts(request.user))
        )
        return qs.annotate(
            last_full_id=Subquery(last.values("pk")[:1]),
            last_full_at=Subquery(last.values("finished_at")[:1]),
            last_full_year=Subquery(last.values("school_year")[:1]),
            last_outcome=Subquery(last.values("outcome")[:1]),
        ).annotate(last_errors=Subquery(errors))

    def has_module_permission(self, request):
        return rights.is_state(request.user)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # 404, not the admin's 403: a district user does not learn the page exists.
        if not rights.is_state(request.user):
            log_refusal(request.user, "admin", "the state dashboard")
            raise Http404("Not found.")
        extra_context = {"title": "State dashboard: every district", **(extra_context or {})}
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl")
        if cl is not None:
            response.context_data["outcome_chart"] = mark_safe(self.outcome_chart(cl.queryset))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        raise Http404("Not found.")  # the districts' pages are the District admin's

    def outcome_chart(self, queryset) -> str:
        """Districts by their last full resync's outcome, of the rows listed (one query)."""
        counts = dict(queryset.order_by().values_list("last_outcome").annotate(n=Count("pk")))
        never = counts.pop(None, 0) + counts.pop("", 0)
        bars = [(label, counts.get(key, 0), f"status-{key}") for key, label in OUTCOMES[:3]]
        bars.append((OUTCOMES[3][1], never, "status-gray"))
        return charts.bar_chart(bars, "Districts by the outcome of their last full resync")

    # What is missing (no full resync, no mandatory resync) sorts first, the same on every
    # database: NULLs sort first on SQLite and last on PostgreSQL.
    @admin.display(description="Last full resync", ordering=Coalesce("last_full_at", Value(NEVER)))
    def last_full(self, obj):
        if obj.last_full_id is None:
            return "Never"
        url = reverse("admin:resync_resyncrequest_change", args=[obj.last_full_id])
        finished = timefmt.when(obj.last_full_at, obj)  # the district's zone, named
        year = f"{obj.last_full_year - 1}-{obj.last_full_year}"
        return format_html('<a href="{}">{}, finished {}</a>', url, year, finished)

    @admin.display(description="Outcome", ordering=Coalesce("last_outcome", Value("")))
    def outcome(self, obj):
        if not obj.last_outcome:
            return "—"
        return format_html(
            '<span class="status-dot status-{}">●</span> {}', obj.last_outcome, obj.last_outcome.title()
        )

    @admin.display(description="Errors", ordering=Coalesce("last_errors", Value(-1)))
    def errors(self, obj):
        return "—" if obj.last_full_id is None else f"{obj.last_errors or 0:,}"

    @admin.display(
        description="End-of-year resync", boolean=True, ordering=Coalesce("end_of_year_id", Value(0))
    )
    def end_of_year(self, obj) -> bool:
        return obj.end_of_year_id is not None

    @admin.display(
        description="Start-of-year resync", boolean=True, ordering=Coalesce("start_of_year_id", Value(0))
    )
    def start_of_year(self, obj) -> bool | None:
        """None (unknown): never switched, so there was no start of year to resync."""
        return None if obj.year_switched_at is None else obj.start_of_year_id is not None

    @admin.display(description="Ready to switch", boolean=True)
    def ready(self, obj) -> bool:
        return actions.may_switch(obj.end_of_year_id, obj.year_switched_at, obj.start_of_year_id)

    @admin.display(description="History")
    def history_link(self, obj):
        return format_html('<a href="{}">Chart</a>', reverse("admin:dashboard_history", args=[obj.code]))
