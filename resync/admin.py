from functools import partial

from django.contrib import admin
from django.http import Http404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django_rq.models import Dashboard

from . import planner, rights, tool
from .models import District, ResyncRequest, SyncObject
from .queue_admin import OperatorQueueAdmin

# RQ's dashboard (jobs, workers, delete and empty buttons) is the state operators' alone.
if admin.site.is_registered(Dashboard):
    admin.site.unregister(Dashboard)
admin.site.register(Dashboard, OperatorQueueAdmin)


def _marked(names: list[str], immediate: set[str]):
    # The article bolds immediate relatives and marks them with an asterisk.
    return (
        format_html_join(
            ", ",
            "{}",
            ((format_html("<b>{}*</b>", n) if n in immediate else n,) for n in names),
        )
        or "—"
    )


@admin.register(SyncObject)
class SyncObjectAdmin(admin.ModelAdmin):
    list_display = ["name", "immediate_parents", "year_scoped", "syncs_other_years", "editions", "enabled"]
    list_filter = ["enabled", "year_scoped", "editions"]
    list_editable = ["enabled"]
    search_fields = ["name"]
    readonly_fields = ["name", "parent_objects", "child_objects", "note"]
    fields = [
        "name",
        "parent_objects",
        "child_objects",
        "year_scoped",
        "syncs_other_years",
        "editions",
        "enabled",
        "note",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("parents")

    @admin.display(description="Immediate parent(s)")
    def immediate_parents(self, obj: SyncObject) -> str:
        return ", ".join(p.name for p in obj.parents.all()) or "—"

    @admin.display(description="Parent objects (top level first; * immediate)")
    def parent_objects(self, obj: SyncObject):
        parents = SyncObject.objects.parents_map()
        order = planner.ancestor_order(parents, obj.name)
        return _marked(order, set(parents[obj.name]))

    @admin.display(description="Child objects (alphabetical; * immediate)")
    def child_objects(self, obj: SyncObject):
        parents = SyncObject.objects.parents_map()
        below = sorted((n for n in parents if obj.name in planner.ancestors(parents, n)), key=str.lower)
        immediate = {n for n in below if obj.name in parents[n]}
        return _marked(below, immediate)

    def has_add_permission(self, request):
        return False  # the catalog comes from the data migration

    def has_delete_permission(self, request, obj=None):
        return False


class NotFoundNotRedirected:
    """An object the user may not see is a 404, as on the tool pages (the admin would
    redirect home, which tells an outsider nothing but looks like success)."""

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            rights.log_refusal(
                request.user,
                "admin",
                f"{self.opts.verbose_name} {str(object_id)[:40]} (absent or not theirs)",
            )
            raise Http404("Not found.")
        return obj


class ReadOnly:
    """Rows StateSync writes itself (history, results): shown, never added or edited by hand."""

    def has_add_permission(self, request, obj=None):  # obj: inlines pass their parent
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(District)
class DistrictAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "state",
        "scope_year",
        "sync_previous_year",
        "sync_next_year",
        "tool_link",
    ]
    list_select_related = ["state"]
    list_filter = ["state", "scope_year"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        # An existing district's year moves only through the year switch and its end-of-year rule.
        switch = ["year_switched_at", "end_of_year_request", "records_deleted_at"]
        return ["scope_year", *switch] if obj else switch

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "<str:code>/tool/",
                site.admin_view(partial(tool.district_tool, admin_site=site)),
                name="resync_tool",
            ),
            path(
                "<str:code>/tool/plan/",
                site.admin_view(partial(tool.plan_preview, admin_site=site)),
                name="resync_tool_plan",
            ),
            path(
                "state-tool/",
                site.admin_view(partial(tool.state_tool, admin_site=site)),
                name="resync_state_tool",
            ),
            # What the tools' rows show now, for a page whose live socket (re)opened.
            path(
                "<str:code>/tool/state/",
                site.admin_view(partial(tool.tool_state, admin_site=site)),
                name="resync_tool_state",
            ),
            path(
                "state-tool/state/",
                site.admin_view(partial(tool.state_tool_state, admin_site=site)),
                name="resync_state_tool_state",
            ),
            *super().get_urls(),
        ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=rights.districts(request.user).values("pk"))

    def has_view_permission(self, request, obj=None):
        return rights.active(request.user) and (
            super().has_view_permission(request, obj) or rights.districts(request.user).exists()
        )

    @admin.display(description="Resync State Data")
    def tool_link(self, obj: District):
        return format_html('<a href="{}">Open tool</a>', reverse("admin:resync_tool", args=[obj.code]))


@admin.register(ResyncRequest)
class ResyncRequestAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "district",
        "school_year",
        "level",
        "asked",
        "requested_by",
        "status",
        "outcome",
        "created_at",
    ]
    list_select_related = ["district", "requested_by"]
    list_filter = ["status", "level", "outcome", "school_year"]
    search_fields = ["district__code", "district__name"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return rights.visible(request.user, super().get_queryset(request), level="level")

    def has_delete_permission(self, request, obj=None):
        # A request is the record of what was asked and what it concluded (the
        # end-of-year rule reads it): nobody deletes one, a superuser neither.
        return False

    def get_urls(self):
        view = self.admin_site.admin_view(partial(tool.agent_queue, admin_site=self.admin_site))
        return [path("queue/", view, name="resync_agent_queue"), *super().get_urls()]

    @admin.display(description="Objects")
    def asked(self, obj: ResyncRequest) -> str:
        if obj.full:
            return "Full resync"
        names = ", ".join(obj.objects_asked)
        return names + (" (+ dependencies)" if obj.check_dependencies else "")
