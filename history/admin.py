from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.urls import path
from django.utils.html import format_html

from core.admin import NotFoundNotRedirected, ReadOnly
from resync import rights

from .models import DISBatchHistory, ErrorLog


def dot(colour: str):
    return format_html(
        '<span class="status-dot status-{}" title="{}">●</span> {}', colour, colour, colour.title()
    )


@admin.register(DISBatchHistory)
class DISBatchHistoryAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "request_id",
        "district",
        "school_year",
        "sync_object",
        "status_dot",
        "processed",
        "errors",
        "started_at",
        "ended_at",
    ]
    list_select_related = ["district", "sync_object"]
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
        queryset.exclude(pk__in=queryset.unfinished()).delete()

    @admin.display(description="Status", ordering="status")
    def status_dot(self, obj: DISBatchHistory):
        return dot(obj.colour)


@admin.register(ErrorLog)
class ErrorLogAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "district", "sync_object", "record_id", "reason", "message"]
    list_select_related = ["district", "sync_object"]
    list_filter = [
        "reason",
        ("district", admin.RelatedOnlyFieldListFilter),
        ("sync_object", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["message"]
    date_hierarchy = "created_at"
    change_list_template = "admin/history/errorlog/change_list.html"

    def get_queryset(self, request):
        return rights.visible(request.user, super().get_queryset(request), level="step__request__level")

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        return [path("export.csv", export, name="history_errorlog_export"), *super().get_urls()]

    def export_csv(self, request):
        """The Error Log as filtered on the page, streamed as CSV (flat memory at any size)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = self.get_changelist_instance(request).get_queryset(request).order_by("id")
        response = StreamingHttpResponse(rows.as_csv(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="error-log.csv"'
        return response
