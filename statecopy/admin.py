"""The state's copy in the admin: an entry for state users whose page is the export.

StateRecord lives on the state database and may hold millions of rows: no change
list walks it. The entry's page is the export form (statecopy.views); the API's
state-records/ lists and pages the records.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from resync import rights
from resync.models import StateRecord

from . import views


@admin.register(StateRecord)
class StateRecordAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return rights.is_state(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return rights.is_state(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # only a resync writes the state's copy

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return views.state_export(request, self.admin_site)

    def get_urls(self):
        # The export alone: no change page reads one record out of millions by hand.
        return [u for u in super().get_urls() if u.name and u.name.endswith("_changelist")]
