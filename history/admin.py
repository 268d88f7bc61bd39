from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from audit.deletes import RecordedDeletes
from core import timefmt
from core.admin import NotFoundNotRedirected, ReadOnly
from resync import rights
from resync.rules import REASON_HELP

from .models import DISBatchHistory, ErrorLog, label_fields
from .summary import summarise


class LabelledChangeList(ChangeList):
    """The Error Log's page: each row's record label (its schema's label fields in the
    district record's payload, which get_queryset brings along), the label fields read
    once for the page, whatever its number of rows."""

    def get_results(self, request):
        super().get_results(request)
        fields = label_fields()
        for row in self.result_list:
            row.record_label = row.label(row.record_payload, fields.get(row.sync_object_id, ()))


# The filters a summary group's rows link sets itself.
GROUP_KEYS = ("district__id__exact", "sync_object__id__exact", "reason__exact", "reason", "p")


class FiltersOnly(ChangeList):
    """The Error Log page's filters without its page: the summary and the resend read
    the rows the filters select, never a page of them (its counts, its rows)."""

    def get_results(self, request):
        pass


def dot(colour: str):
    return format_html(
        '<span class="status-dot status-{}" title="{}">●</span> {}', colour, colour, colour.title()
    )


@admin.register(DISBatchHistory)
class DISBatchHistoryAdmin(RecordedDeletes, NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "asked",
        "district",
        "school_year",
        "sync_object",
        "status_dot",
        "processed",
        "errors",
        "started",
        "ended",
    ]
    list_select_related = ["district", "sync_object", "request"]
    # Related-only filters: listing every district or object would show what the user may not see.
    list_filter = ["status", "school_year", ("district", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["sync_object__name", "district__code"]
    date_hierarchy = "started_at"

    class Media:
        css = {"all": ["resync/status.css"]}

    def get_queryset(self, request):
        return rights.visible(request.user, super().get_queryset(request))

    def has_delete_permission(self, request, obj=None):
        # History D deletes finished requests' steps only: a request waits for its unfinished ones.
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or not DISBatchHistory.objects.filter(pk=obj.pk).unfinished().exists()

    def get_deleted_objects(self, objs, request):
        # An unfinished step among those selected refuses the whole deletion, as a
        # protected object does (the confirmation page names it and offers no "Yes").
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        ids = [o.pk for o in objs]
        running = DISBatchHistory.objects.filter(pk__in=ids).unfinished().select_related("sync_object")
        if running:
            # has_delete_permission said no for these: say why instead of "no permission".
            perms_needed = perms_needed - {self.opts.verbose_name}
            protected += [
                f"{s.sync_object} step {s.pk} of resync {s.request_id}: not finished" for s in running
            ]
        return deleted, counts, perms_needed, protected

    def delete_queryset(self, request, queryset):
        # Checked again at the deletion itself: a request may have been sent since the confirmation.
        super().delete_queryset(request, queryset.exclude(pk__in=queryset.unfinished()))

    @admin.display(description="Status", ordering="status")
    def status_dot(self, obj: DISBatchHistory):
        return dot(obj.colour)

    # Times in the district's zone, named (core.timefmt); the request by when it was asked.
    @admin.display(description="Request asked", ordering="request__created_at")
    def asked(self, obj: DISBatchHistory) -> str:
        return timefmt.when(obj.request.created_at, obj.district)

    @admin.display(description="Last resync", ordering="started_at")
    def started(self, obj: DISBatchHistory) -> str:
        return timefmt.when(obj.started_at, obj.district)

    @admin.display(description="Ended", ordering="ended_at")
    def ended(self, obj: DISBatchHistory) -> str:
        return timefmt.when(obj.ended_at, obj.district)


@admin.register(ErrorLog)
class ErrorLogAdmin(RecordedDeletes, NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = ["when", "district", "sync_object", "record", "reason_shown", "message", "asked"]
    list_select_related = ["district", "sync_object", "step__request"]
    list_filter = [
        "reason",
        ("district", admin.RelatedOnlyFieldListFilter),
        ("sync_object", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["message"]
    date_hierarchy = "created_at"
    change_list_template = "admin/history/errorlog/change_list.html"
    audit_level = "step__request__level"

    def get_queryset(self, request):
        # The district record's payload rides along: the Record column names it by its
        # schema's label fields.
        qs = super().get_queryset(request).with_record_payload()
        return rights.visible(request.user, qs, level="step__request__level")

    def get_changelist(self, request, **kwargs):
        return FiltersOnly if getattr(request, "filters_only", False) else LabelledChangeList

    def filtered(self, request):
        """The rows the page's filters (request.GET) select, as the page would list them to
        this user; IncorrectLookupParameters for a filter the page does not offer."""
        request.filters_only = True
        try:
            return self.get_changelist_instance(request).get_queryset(request)
        finally:
            del request.filters_only

    def resend_rows(self, request) -> tuple[QuerySet | None, str, int]:
        """What a "resend what failed" page starts from: (the filtered rows, "", 200), or
        (None, the refusal, 400) for a filter the page does not offer. PermissionDenied
        for a user who may not read the Error Log at all."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return self.filtered(request), "", 200
        except IncorrectLookupParameters:
            return None, "The Error Log filter in this address is not one it offers.", 400

    @admin.display(description="Reason", ordering="reason")
    def reason_shown(self, obj: ErrorLog):
        # What to fix in the SIS, under the reason (resync.rules.REASON_HELP).
        return format_html(
            '{}<br><span class="help">{}</span>', obj.get_reason_display(), REASON_HELP.get(obj.reason, "")
        )

    @admin.display(description="Record (district id)", ordering="record_id")
    def record(self, obj: ErrorLog) -> str:
        label = getattr(obj, "record_label", "")
        return f"{obj.record_id} {label}" if label else str(obj.record_id)

    @admin.display(description="Created", ordering="created_at")
    def when(self, obj: ErrorLog) -> str:
        return timefmt.when(obj.created_at, obj.district)

    @admin.display(description="Request asked", ordering="step__request__created_at")
    def asked(self, obj: ErrorLog) -> str:
        return timefmt.when(obj.step.request.created_at, obj.district)

    def lookup_allowed(self, lookup, value, request=None):
        # The tool's Results, Status and finish summary link here filtered to one request
        # (no sidebar filter: a list of every request would be long). get_queryset still
        # narrows to what the user may see, so another district's request id lists nothing.
        if lookup == "step__request__id__exact":
            return True
        return super().lookup_allowed(lookup, value, request)

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        summary = self.admin_site.admin_view(self.summary_view)
        return [
            path("export.csv", export, name="history_errorlog_export"),
            path("summary/", summary, name="history_errorlog_summary"),
            *super().get_urls(),
        ]

    def summary_view(self, request):
        """The Error Log as filtered on the page, by cause (history.summary), most fixed first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            causes = summarise(self.filtered(request))
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("The Error Log filter in this address is not one it offers.")
        base = reverse("admin:history_errorlog_changelist")
        resend = reverse("admin:resync_resend_failed")
        kept = {k: v for k, v in request.GET.items() if k not in GROUP_KEYS}
        ids = {(c.district, c.object): c.object_id for c in causes}

        def rows(c, object_id: int, reason: str | None = None) -> str:
            # A group's rows: the page's filters narrowed to its district and object (and reason).
            q = {**kept, "district__id__exact": c.district_id, "sync_object__id__exact": object_id}
            if reason:
                q["reason__exact"] = reason
            return f"{base}?{urlencode(q)}"

        for c in causes:
            c.rows_url = rows(c, c.object_id, c.reason)
            # Resend this group's object (its Check Dependencies if a parent was missing).
            c.resend_url = rows(c, c.object_id, c.reason).replace(base, resend, 1)
            c.parent_links = [(p, rows(c, ids[c.district, p])) for p in c.parents_with_errors]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Error Log by cause",
            "causes": causes,
            "total": sum(c.count for c in causes),
            "query": request.GET.urlencode(),
        }
        return TemplateResponse(request, "admin/history/errorlog/summary.html", context)

    def export_csv(self, request):
        """The Error Log as filtered on the page, streamed as CSV (flat memory at any size)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = self.get_changelist_instance(request).get_queryset(request).order_by("id")
        response = StreamingHttpResponse(rows.as_csv(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="error-log.csv"'
        return response
