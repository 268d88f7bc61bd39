from functools import partial

from django.contrib import admin, messages
from django.db.models import Max, OuterRef, Subquery, Sum
from django.urls import path, reverse
from django.utils.html import format_html

from resync import actions, rights
from resync.admin import NotFoundNotRedirected, ReadOnly
from resync.models import ResyncRequest

from . import actions as verify
from . import views
from .models import (
    DISVerificationDifference,
    DISVerificationResult,
    SchoolYearSwitch,
    SelectiveSync,
    VerificationRun,
    VerificationSetting,
    visible_runs_q,
)


def _link(url: str, text) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


class ResultInline(ReadOnly, admin.TabularInline):
    model = DISVerificationResult
    fields = ["sync_object", "only_district", "only_state", "different", "not_allowed", "matching", "rows"]
    readonly_fields = fields
    can_delete = False
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sync_object")

    def has_view_permission(self, request, obj=None):
        return rights.may_view_verification(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Records")
    def rows(self, obj: DISVerificationResult):
        url = reverse("admin:verification_disverificationdifference_changelist")
        return _link(f"{url}?result__id__exact={obj.pk}", "Drill down")


@admin.register(VerificationRun)
class VerificationRunAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "district",
        "school_year",
        "status",
        "progress",
        "to_resync",
        "not_allowed",
        "requested_by",
        "created_at",
        "resync_link",
    ]
    list_select_related = ["district", "requested_by"]
    list_filter = ["status", "school_year", ("district", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["district__code", "district__name"]
    date_hierarchy = "created_at"
    fields = [
        "district",
        "school_year",
        "sync_objects",
        "status",
        "progress",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "message",
        "resync_link",
    ]
    readonly_fields = fields
    inlines = [ResultInline]
    actions = ["resync_differences"]
    change_form_template = "admin/verification/verificationrun/change_form.html"

    class Media:
        js = ["resync/verification.js"]  # Status and Progress follow a running verification live

    def get_queryset(self, request):
        # The state's runs are not the district's to know of; nor is a state request
        # sent from a district's run (resync_shown).
        qs = super().get_queryset(request).visible_to(request.user).with_resync_shown(request.user)
        return qs.with_totals()

    def get_list_display(self, request):
        # Only the state sees runs of both levels: a district user's are all the district's.
        shown = super().get_list_display(request)
        return [*shown[:3], "level", *shown[3:]] if rights.is_state(request.user) else shown

    def get_list_filter(self, request):
        shown = super().get_list_filter(request)
        return [*shown, "level"] if rights.is_state(request.user) else shown

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "<int:pk>/resync/",
                site.admin_view(partial(views.run_resync, admin_site=site)),
                name="verification_run_resync",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return views.run_form(request, admin_site=self.admin_site)

    def has_module_permission(self, request):
        return rights.may_view_verification(request.user)

    def has_view_permission(self, request, obj=None):
        return rights.may_view_verification(request.user)

    def has_add_permission(self, request):
        return rights.may_run_verification(request.user)

    def has_delete_permission(self, request, obj=None):
        return rights.may_delete_verification(request.user)

    def get_deleted_objects(self, objs, request):
        # Results and differences belong to their run: the run's D right deletes them.
        deleted, counts, _needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    @admin.display(description="To resync", ordering="differing")
    def to_resync(self, obj: VerificationRun) -> int:
        return obj.differing

    @admin.display(description="Not allowed to sync", ordering="refused")
    def not_allowed(self, obj: VerificationRun) -> int:
        return obj.refused

    @admin.display(description="Resync sent")
    def resync_link(self, obj: VerificationRun):
        if not obj.resync_shown:
            return "—"
        url = reverse("admin:resync_resyncrequest_change", args=[obj.resync_shown])
        return _link(url, f"Resync {obj.resync_shown}")

    @admin.action(description="Resync the objects that differ (with Check Dependencies)")
    def resync_differences(self, request, queryset):
        for run in queryset.select_related("district"):
            try:
                checked = verify.check_verification_resync(run, request.user)
                req = verify.do_verification_resync(run, checked)
            except views.REFUSALS as e:
                views.refused(request.user, e, f"the one-click resync of verification {run.pk}")
                messages.error(request, f"Verification {run.pk}: {e}")
            else:
                messages.success(request, f"Verification {run.pk}: resync {req.pk} sent.")


@admin.register(DISVerificationResult)
class DISVerificationResultAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = [
        "run_link",
        "district",
        "school_year",
        "sync_object",
        "only_district",
        "only_state",
        "different",
        "not_allowed",
        "matching",
        "drill_down",
    ]
    list_select_related = ["run__district", "sync_object"]
    list_filter = [("sync_object", admin.RelatedOnlyFieldListFilter), "run__school_year"]
    search_fields = ["sync_object__name", "run__district__code"]

    def get_queryset(self, request):
        # As the runs: the lists, their filters' options and the change pages all read this.
        return super().get_queryset(request).filter(visible_runs_q(request.user, "run__"))

    def has_module_permission(self, request):
        return rights.may_view_verification(request.user)

    def has_view_permission(self, request, obj=None):
        return rights.may_view_verification(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Verification", ordering="run")
    def run_link(self, obj: DISVerificationResult):
        return _link(reverse("admin:verification_verificationrun_change", args=[obj.run_id]), obj.run_id)

    @admin.display(description="District")
    def district(self, obj: DISVerificationResult):
        return obj.run.district

    @admin.display(description="Year")
    def school_year(self, obj: DISVerificationResult) -> int:
        return obj.run.school_year

    @admin.display(description="Records")
    def drill_down(self, obj: DISVerificationResult):
        url = reverse("admin:verification_disverificationdifference_changelist")
        return _link(f"{url}?result__id__exact={obj.pk}", "Drill down")


@admin.register(DISVerificationDifference)
class DISVerificationDifferenceAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = ["record_id", "sync_object", "kind", "reason", "detail", "district", "run_link"]
    list_select_related = ["result__run__district", "result__sync_object"]
    # Not-allowed records are kept apart: not every difference is a failure.
    list_filter = ["kind", "reason", ("result__sync_object", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=record_id"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(visible_runs_q(request.user, "result__run__"))

    def has_module_permission(self, request):
        return rights.may_view_verification(request.user)

    def has_view_permission(self, request, obj=None):
        return rights.may_view_verification(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Object")
    def sync_object(self, obj: DISVerificationDifference):
        return obj.result.sync_object

    @admin.display(description="District")
    def district(self, obj: DISVerificationDifference):
        return obj.result.run.district

    @admin.display(description="Verification")
    def run_link(self, obj: DISVerificationDifference):
        url = reverse("admin:verification_verificationrun_change", args=[obj.result.run_id])
        return _link(url, obj.result.run_id)


@admin.register(VerificationSetting)
class VerificationSettingAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    """The state's switch for district-initiated verification, for all districts."""

    list_display = ["__str__", "district_initiated", "changed_at", "changed_by"]
    fields = ["district_initiated", "changed_at", "changed_by"]
    readonly_fields = ["changed_at", "changed_by"]

    def changelist_view(self, request, extra_context=None):
        VerificationSetting.current()  # the single row exists before anyone lists it
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")

    def has_module_permission(self, request):
        return rights.may_switch_verification(request.user)

    def has_view_permission(self, request, obj=None):
        return rights.may_switch_verification(request.user)

    def has_change_permission(self, request, obj=None):
        return rights.may_switch_verification(request.user)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.changed_by = request.user
        super().save_model(request, obj, form, change)


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
        "created_at",
    ]
    list_select_related = ["district", "requested_by"]
    list_filter = ["status", "school_year", ("district", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["district__code", "district__name"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        qs = super().get_queryset(request).filter(records__isnull=False)
        qs = rights.visible(request.user, qs, level="level")
        return qs.annotate(
            processed=Sum("steps__processed"), errors=Sum("steps__errors"), step=Max("steps__id")
        )

    def add_view(self, request, form_url="", extra_context=None):
        return views.selective_form(request, admin_site=self.admin_site)

    def has_module_permission(self, request):
        return rights.may_view_selective(request.user)

    def has_view_permission(self, request, obj=None):
        return rights.may_view_selective(request.user)

    def has_add_permission(self, request):
        return rights.may_use_selective(request.user)

    def has_delete_permission(self, request, obj=None):
        # Only finished history: deleting a running request would orphan its steps.
        finished = obj is None or obj.status == ResyncRequest.Status.FINISHED
        return rights.may_delete_selective(request.user) and finished

    def delete_queryset(self, request, queryset):
        queryset.filter(status=ResyncRequest.Status.FINISHED).delete()

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
        return _link(f"{reverse('admin:history_errorlog_changelist')}?step__id__exact={obj.step}", "Open")


@admin.register(SchoolYearSwitch)
class SchoolYearSwitchAdmin(NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    """Per district: ready to switch (end-of-year rule), and after a switch whether both
    mandatory full resyncs happened (end-of-year before it, start-of-year after)."""

    list_display = [
        "code",
        "name",
        "scope_year",
        "last_change",
        "ready",
        "year_switched_at",
        "end_of_year",
        "start_of_year",
    ]
    list_select_related = ["end_of_year_request"]
    list_filter = ["scope_year"]
    search_fields = ["code", "name"]
    actions = ["switch_year"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).filter(pk__in=rights.districts(request.user).values("pk"))
        full = actions.full_resyncs(OuterRef("pk"), OuterRef("scope_year"))
        return qs.annotate(
            changed=actions.last_change_expression(),  # a record changed or deleted: as the rule reads it
            last_full=Subquery(full.order_by("-started_at").values("started_at")[:1]),
            start_request=Subquery(
                full.filter(started_at__gte=OuterRef("year_switched_at")).order_by("id").values("id")[:1]
            ),
        )

    def has_module_permission(self, request):
        return rights.is_state(request.user) or rights.may_switch_year(request.user)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return super().get_actions(request) if rights.may_switch_year(request.user) else {}

    @admin.display(description="Last data change", ordering="changed")
    def last_change(self, obj):
        return obj.changed or "—"

    @admin.display(description="Ready to switch", boolean=True)
    def ready(self, obj) -> bool:
        """A full resync of the scoped year started after the last data change."""
        return obj.last_full is not None and (obj.changed is None or obj.last_full > obj.changed)

    @admin.display(description="End-of-year resync (before the switch)")
    def end_of_year(self, obj):
        req = obj.end_of_year_request
        if obj.year_switched_at is None:
            return "—"
        if req is None:
            return "Missing"
        url = reverse("admin:resync_resyncrequest_change", args=[req.pk])
        return _link(url, f"Resync {req.pk} of {req.school_year}, finished {req.finished_at:%Y-%m-%d}")

    @admin.display(description="Start-of-year resync (after the switch)")
    def start_of_year(self, obj):
        if obj.year_switched_at is None:
            return "—"
        if obj.start_request is None:
            return "Missing"
        url = reverse("admin:resync_resyncrequest_change", args=[obj.start_request])
        return _link(url, f"Resync {obj.start_request}")

    @admin.action(description="Switch to the next school year (needs the end-of-year full resync)")
    def switch_year(self, request, queryset):
        for district in queryset:
            try:
                switch = actions.check_year_switch(district, request.user)
                actions.do_year_switch(switch)
            except views.REFUSALS as e:
                messages.error(request, str(e))
            else:
                messages.success(
                    request, f"District {district.code} now syncs {switch.from_year + 1}: alert sent."
                )
