"""The Audit report: read-only, filtered, downloadable as CSV (formula-safe)."""

from __future__ import annotations

import csv
import itertools

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.urls import path

from audit import rights
from audit.models import AuditEntry
from core import spreadsheet, timefmt
from core.admin import NotFoundNotRedirected

COLUMNS = [
    "at",
    "username",
    "door",
    "district_code",
    "level",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "detail",
]


class Echo:
    """A file csv.writer writes to that hands each line back: streamed, never held whole."""

    def write(self, value: str) -> str:
        return value


@admin.register(AuditEntry)
class AuditEntryAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    list_display = ["when", "username", "door", "district_code", "action", "object_repr", "detail"]
    list_select_related = ["district"]
    list_filter = [
        "door",
        "action",
        ("district", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
        ("at", admin.DateFieldListFilter),
    ]
    search_fields = ["username", "object_repr", "detail"]
    date_hierarchy = "at"
    change_list_template = "admin/audit/auditentry/change_list.html"

    # The trail is never added to, edited or deleted by hand: record() writes it.
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return rights.may_read(request.user)

    def has_module_permission(self, request) -> bool:
        return rights.may_read(request.user)

    def get_queryset(self, request):
        return rights.readable(request.user).select_related("district")

    when = timefmt.column("at", "When")

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        return [path("export.csv", export, name="audit_auditentry_export"), *super().get_urls()]

    def export_csv(self, request):
        """The report as filtered on the page, every cell formula-safe (core.spreadsheet)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = self.get_changelist_instance(request).get_queryset(request).order_by("at", "id")
        out = csv.writer(Echo())
        body = itertools.chain(
            [out.writerow(COLUMNS)],
            (
                out.writerow([spreadsheet.cell(v) for v in row])
                for row in rows.values_list(*COLUMNS).iterator()
            ),
        )
        response = StreamingHttpResponse(body, content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-report.csv"'
        return response
