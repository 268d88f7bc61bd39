"""The admin's uploads (the form, each upload's page) and the history of loads.

Both lists show a user their districts' rows only (rights.districts: every district
for a state user). An upload's pages are views of loads.views wired here, as the
tool's pages are DistrictAdmin's; the district's admin list links to the form.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path

from core import timefmt
from core.admin import NotFoundNotRedirected, ReadOnly
from resync import rights

from . import views
from .models import Load, Upload


class DistrictRows(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    """Rows of the user's districts, shown to anyone holding a district (a district user
    holds no model permission of loads), written only by StateSync itself."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(district__in=rights.districts(request.user))

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        if not rights.active(request.user):
            return False
        if super().has_view_permission(request, obj):
            return True
        # Asked for both admins on every admin page (the sidebar): one query a request.
        if not hasattr(request, "_holds_a_district"):
            request._holds_a_district = rights.districts(request.user).exists()
        return request._holds_a_district

    def has_delete_permission(self, request, obj=None):
        return False  # the record of who loaded what


@admin.register(Load)
class LoadAdmin(DistrictRows):
    list_display = [
        "id",
        "district",
        "sync_object",
        "school_year",
        "snapshot",
        "loaded_by",
        "loaded",
        "read",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "rejected",
    ]
    list_select_related = ["district", "sync_object", "loaded_by"]
    loaded = timefmt.column("loaded_at", "Loaded")  # the district's zone, named
    list_filter = ["snapshot", "school_year"]  # no district filter: its choices would list every district
    search_fields = ["district__code", "district__name", "sync_object__name"]


@admin.register(Upload)
class UploadAdmin(DistrictRows):
    list_display = [
        "id",
        "district",
        "sync_object",
        "school_year",
        "name",
        "uploaded_by",
        "uploaded",
        "status",
        "progress",
    ]
    list_select_related = ["district", "sync_object", "uploaded_by"]
    uploaded = timefmt.column("uploaded_at", "Uploaded")  # the district's zone, named
    list_filter = ["status"]
    search_fields = ["district__code", "district__name", "name"]

    def get_urls(self) -> list[URLPattern]:
        page = lambda route, view, name: path(route, self.admin_site.admin_view(view), name=name)  # noqa: E731
        return [
            page("new/<str:code>/", self.form_view, "loads_upload_new"),
            page("<int:pk>/progress/", self.progress_view, "loads_upload_progress"),
            page("<int:pk>/confirm/", self.confirm_view, "loads_upload_confirm"),
            page("<int:pk>/report/", self.report_view, "loads_upload_report"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url="", extra_context=None
    ) -> HttpResponse:
        # The upload's page: its progress, preview and verdict, and the confirm.
        if not object_id.isascii() or not object_id.isdigit():
            raise Http404("No such upload.")
        return views.upload_page(request, int(object_id), self.admin_site)

    def form_view(self, request: HttpRequest, code: str) -> HttpResponse:
        return views.upload_form(request, code, self.admin_site)

    def progress_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return views.upload_progress(request, pk, self.admin_site)

    def confirm_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return views.upload_confirm(request, pk, self.admin_site)

    def report_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return views.upload_report(request, pk, self.admin_site)
