"""Selective Sync in the admin: the tool (Add) and its history (the change list).

Its pages keep the URLs of the SelectiveSync proxy they have always had
(/admin/verification/selectivesync/, admin:verification_selectivesync_*).
"""

from django.contrib import admin
from django.db.models import Max, Sum
from django.urls import path, reverse
from django.utils.html import format_html

from core import timefmt
from core.admin import NotFoundNotRedirected, ReadOnly
from resync import rights
from verification.models import SelectiveSync

from . import views
from .rights import may_delete_selective, may_use_selective, may_view_selective


@admin.register(SelectiveSync)
class SelectiveSyncAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    """Selective Sync: the tool (Add) and its history (this list)."""

    list_display = [
        "id",
        "district",
        "school_year",
        "object",
        "record_ids",
        "level",
        "requested_by",
        "status",
        "processed",
        "errors",
        "error_log",
        "created",
    ]
    list_select_related = ["district", "requested_by"]
    created = timefmt.column("created_at", "Created")  # the district's zone, named
    list_filter = ["status", "school_year", ("district", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["district__code", "district__name"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        qs = rights.visible(request.user, super().get_queryset(request), level="level")
        return qs.annotate(
            processed=Sum("steps__processed"), errors=Sum("steps__errors"), step=Max("steps__id")
        )

    def add_view(self, request, form_url="", extra_context=None):
        return views.selective_form(request, admin_site=self.admin_site)

    def get_urls(self):
        # Resend the failed records: its page takes the Error Log's filters (a request's
        # page links it with its own), so it needs no row of this list.
        page = self.admin_site.admin_view(self.resend_records_view)
        return [
            path("resend-failed-records/", page, name="verification_selectivesync_resend_records"),
            *super().get_urls(),
        ]

    def resend_records_view(self, request):
        return views.resend_records(request, admin_site=self.admin_site)

    def has_module_permission(self, request):
        return may_view_selective(request.user)

    def has_view_permission(self, request, obj=None):
        return may_view_selective(request.user)

    def has_add_permission(self, request):
        return may_use_selective(request.user)

    def has_delete_permission(self, request, obj=None):
        deletable = obj is None or SelectiveSync.objects.filter(pk=obj.pk).deletable().exists()
        return may_delete_selective(request.user) and deletable

    def delete_queryset(self, request, queryset):
        queryset.deletable().delete()

    def get_deleted_objects(self, objs, request):
        # Its steps, Error Log and alerts are its history: Selective Sync D deletes them.
        deleted, counts, _needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    @admin.display(description="Object")
    def object(self, obj: SelectiveSync) -> str:
        return ", ".join(obj.objects_asked or [])

    @admin.display(description="Records")
    def record_ids(self, obj: SelectiveSync) -> str:
        ids = ", ".join(str(i) for i in obj.records[:10])
        return ids + (f" … ({len(obj.records)})" if len(obj.records) > 10 else "")

    @admin.display(description="Processed")
    def processed(self, obj) -> int:
        return obj.processed or 0

    @admin.display(description="Errors")
    def errors(self, obj) -> int:
        return obj.errors or 0

    @admin.display(description="Error Log")
    def error_log(self, obj):
        if not obj.errors:
            return "—"
        url = f"{reverse('admin:history_errorlog_changelist')}?step__id__exact={obj.step}"
        return format_html('<a href="{}">{}</a>', url, "Open")
