"""The admin's districts and resync requests, and the tool's pages hung on them.

The tool's pages are admin pages of these ModelAdmins, as django.contrib.auth's
password page is UserAdmin's: each a method wired in get_urls through
admin_view (signed-in staff only), the view itself in tool.views. URL names
and paths are those the templates and the API's links already use.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core import timefmt
from core.admin import NotFoundNotRedirected, ReadOnly
from core.errors import REFUSALS, status_for
from history.models import ErrorLog
from resync import rights
from resync.models import District, ResyncRequest

from . import actions, districts, resend, views


def cancel_refusal(req: ResyncRequest, user) -> str:
    """Why `user` may not cancel `req` now, or "": the request's page offers Cancel only then."""
    try:
        actions.check_cancel(req, user)
    except REFUSALS as e:
        return str(e)
    return ""


class AdminPages:
    """Pages of a ModelAdmin beside its change list."""

    def page(self, route: str, view: Callable[..., HttpResponse], name: str) -> URLPattern:
        """`view`, a method of this ModelAdmin, at `route` under the model's admin URLs."""
        return path(route, self.admin_site.admin_view(view), name=name)


@admin.register(District)
class DistrictAdmin(AdminPages, NotFoundNotRedirected, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "state",
        "scope_year",
        "sync_previous_year",
        "sync_next_year",
        "time_zone",
        "tool_link",
        "upload_link",
    ]
    list_select_related = ["state"]
    list_filter = ["state", "scope_year"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        # An existing district's year moves only through the year switch and its end-of-year rule.
        switch = ["year_switched_at", "end_of_year_request", "records_deleted_at"]
        if obj and not super().has_change_permission(request, obj):
            # A state administrator sets the time zone only (has_change_permission).
            return [f.name for f in self.opts.fields if f.name not in ("id", "time_zone")]
        return ["scope_year", *switch] if obj else switch

    def has_change_permission(self, request, obj=None):
        # State administrators (state R and W) set a district's time zone, the one its
        # pages, live rows and CSVs show times in (core.timefmt); nothing else of it.
        return super().has_change_permission(request, obj) or (
            rights.is_state(request.user) and rights.may_send_state(request.user)
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            self.page("<str:code>/tool/", self.tool_view, "resync_tool"),
            self.page("<str:code>/tool/plan/", self.plan_view, "resync_tool_plan"),
            self.page("state-tool/", self.state_tool_view, "resync_state_tool"),
            # What the tools' rows show now, for a page whose live socket (re)opened.
            self.page("<str:code>/tool/state/", self.tool_state_view, "resync_tool_state"),
            self.page("state-tool/state/", self.state_tool_state_view, "resync_state_tool_state"),
            *super().get_urls(),
        ]

    def tool_view(self, request: HttpRequest, code: str) -> HttpResponse:
        return views.district_tool(request, code, self.admin_site)

    def plan_view(self, request: HttpRequest, code: str) -> HttpResponse:
        return views.plan_preview(request, code, self.admin_site)

    def tool_state_view(self, request: HttpRequest, code: str) -> HttpResponse:
        return views.tool_state(request, code, self.admin_site)

    def state_tool_view(self, request: HttpRequest) -> HttpResponse:
        return views.state_tool(request, self.admin_site)

    def state_tool_state_view(self, request: HttpRequest) -> HttpResponse:
        return views.state_tool_state(request, self.admin_site)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=rights.districts(request.user).values("pk"))

    def has_add_permission(self, request):
        return districts.may_add_districts(request.user)

    def add_view(self, request, form_url="", extra_context=None):
        # The district, its state and schools through do_add_district, as add_district
        # makes them: the model's own form would skip the schools and the command's checks.
        return districts.add_district(request, self)

    def has_view_permission(self, request, obj=None):
        return rights.active(request.user) and (
            super().has_view_permission(request, obj) or rights.districts(request.user).exists()
        )

    @admin.display(description="Resync State Data")
    def tool_link(self, obj: District):
        return format_html('<a href="{}">Open tool</a>', reverse("admin:resync_tool", args=[obj.code]))

    @admin.display(description="Records")
    def upload_link(self, obj: District):
        return format_html(
            '<a href="{}">Upload records</a>', reverse("admin:loads_upload_new", args=[obj.code])
        )


@admin.register(ResyncRequest)
class ResyncRequestAdmin(AdminPages, NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "district",
        "school_year",
        "level",
        "asked",
        "requested_by",
        "status",
        "outcome",
        "asked_at",
    ]
    list_select_related = ["district", "requested_by"]
    list_filter = ["status", "level", "outcome", "school_year", ("schedule", admin.EmptyFieldListFilter)]
    search_fields = ["district__code", "district__name"]
    date_hierarchy = "created_at"
    # The request's page: what was asked, by whom, how it went; its steps below (the template).
    fields = [
        "district",
        "school_year",
        "level",
        "asked",
        "asked_by",
        "asked_at",
        "schedule",  # empty unless a schedule sent it (issue 15: marked as scheduled)
        "status",
        "outcome",
        "started",
        "finished",
        "cancelled",
    ]
    readonly_fields = fields
    actions = ["cancel_waiting"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("district", "requested_by", "cancelled_by")
        return rights.visible(request.user, qs, level="level")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # get_object first: an id the user may not see is a 404 before any step is read.
        req = self.get_object(request, object_id)
        steps = list(req.steps.select_related("sync_object").order_by("layer", "sync_object__name"))
        extra = {
            "steps": steps,
            "may_cancel": cancel_refusal(req, request.user) == "",
            # Resend what failed: the request's Error Log rows (tool.resend's confirmation page).
            "failed": any(s.errors for s in steps),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Cancel a waiting request: a page saying what will happen (GET), then the cancel (POST)."""
        return views.cancel_request(request, self.get_object(request, object_id), self)

    def resend_failed_view(self, request: HttpRequest) -> HttpResponse:
        """Resend what failed: the Error Log rows its filters select (a request's, an
        object's, any filter's), as the Error Log page shows them to this user; GET says
        what will be sent, POST sends it (tool.resend, as the API's resend-failed)."""
        log = self.admin_site._registry[ErrorLog]
        rows, refusal, status = log.resend_rows(request)
        back = reverse("admin:history_errorlog_summary") + (
            f"?{request.GET.urlencode()}" if request.GET else ""
        )
        plan = None
        if rows is not None:
            try:
                plan = resend.check_resend_failed(rows, request.user)
                if request.method == "POST":
                    created = resend.do_resend_failed(plan)
                    messages.success(
                        request, f"Sent request {created.pk}: {', '.join(plan.checked.plan.order)}."
                    )
                    page = reverse("admin:resync_resyncrequest_change", args=[created.pk])
                    return HttpResponseRedirect(page, status=303)
            except REFUSALS as e:
                views.refused(request.user, e, "resending what failed")
                refusal, status, plan = str(e), status_for(e), None
        context = {
            **self.admin_site.each_context(request),
            "title": "Resend what failed?",
            "opts": log.opts,
            "resend": plan,
            "refusal": refusal,
            "back": back,
        }
        return TemplateResponse(
            request, "admin/history/errorlog/resend_confirmation.html", context, status=status
        )

    @admin.action(description="Cancel the selected waiting requests")
    def cancel_waiting(self, request: HttpRequest, queryset) -> None:
        for req in queryset:
            try:
                actions.check_cancel(req, request.user)
                actions.do_cancel(req, request.user)
            except REFUSALS as e:
                views.refused(request.user, e, f"cancelling request {req.pk}")
                messages.error(request, f"Request {req.pk}: {e}")
            else:
                messages.success(request, f"Request {req.pk} cancelled: none of its steps will run.")

    @admin.display(description="Requested by")
    def asked_by(self, obj: ResyncRequest) -> str:
        # The username as text: the admin's own link to the user's page opens for few.
        return obj.requested_by.username if obj.requested_by else "an operator (command)"

    @admin.display(description="Cancelled")
    def cancelled(self, obj: ResyncRequest) -> str:
        if obj.cancelled_at is None:
            return "—"
        who = obj.cancelled_by.username if obj.cancelled_by else "an operator (command)"
        return f"by {who} at {timefmt.when(obj.cancelled_at, obj.district)}"

    def has_delete_permission(self, request, obj=None):
        # A request is the record of what was asked and what it concluded (the
        # end-of-year rule reads it): nobody deletes one, a superuser neither.
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            self.page("queue/", self.agent_queue_view, "resync_agent_queue"),
            self.page("resend-failed/", self.resend_failed_view, "resync_resend_failed"),
            self.page("<path:object_id>/cancel/", self.cancel_view, "resync_resyncrequest_cancel"),
            *super().get_urls(),
        ]

    def agent_queue_view(self, request: HttpRequest) -> HttpResponse:
        return views.agent_queue(request, self.admin_site)

    # In the district's zone, named (core.timefmt), as its tool and CSVs write it.
    asked_at = timefmt.column("created_at", "Asked")
    started = timefmt.column("started_at", "Started")
    finished = timefmt.column("finished_at", "Finished")

    @admin.display(description="Objects")
    def asked(self, obj: ResyncRequest) -> str:
        if obj.full:
            return "Full resync"
        names = ", ".join(obj.objects_asked)
        return names + (" (+ dependencies)" if obj.check_dependencies else "")
