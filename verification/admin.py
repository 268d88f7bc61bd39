from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.contrib import admin, messages
from django.db.models import Q
from django.urls import path, reverse
from django.utils.html import format_html

from core import timefmt
from core.admin import NotFoundNotRedirected, ReadOnly
from core.errors import REFUSALS
from resync import rights
from resync.models import DistrictRecord, StateRecord

from . import actions as verify
from . import views
from .models import DISVerificationDifference, DISVerificationResult, VerificationRun, VerificationSetting
from .rights import (
    may_delete_verification,
    may_run_verification,
    may_switch_verification,
    may_view_verification,
)


def _link(url: str, text) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


# ---- a "different" record, the district's and the state's values side by side ----------

# Differences shown side by side on a run's page; the rest are a click away (drill down).
SIDE_BY_SIDE = 10


@dataclass
class Pair:
    """One field of a record at both sides, as they stand now."""

    field: str
    district: object
    state: object

    @property
    def differs(self) -> bool:
        return self.district != self.state


@dataclass
class SideBySide:
    difference: DISVerificationDifference
    pairs: list[Pair]
    missing: str = ""  # a side no longer holds the record (changed since the run)


MISSING = object()


def side_by_side(differences: list[DISVerificationDifference]) -> list[SideBySide]:
    """Each "different" record's fields at the district and at the state, field by field
    (school year, each parent link, each payload field), in two queries for all of them.

    A verification stores which parts differed, not the values: these are read now, so
    a load or a resync since the run shows here (the page says so)."""
    if not differences:
        return []
    keys = [(d.result.run.district, d.result.sync_object, d.record_id) for d in differences]
    district_q, state_q = Q(pk__in=[]), Q(pk__in=[])
    for district, obj, rid in keys:
        district_q |= Q(district=district, sync_object=obj, record_id=rid)
        state_q |= Q(district_code=district.code, sync_object=obj.name, record_id=rid)
    fields = ["district_id", "sync_object_id", "record_id", "school_year", "parent_ids", "payload"]
    at_district = {
        (r["district_id"], r["sync_object_id"], r["record_id"]): r
        for r in DistrictRecord.objects.filter(district_q).values(*fields)
    }
    state_fields = ["district_code", "sync_object", "record_id", "school_year", "parent_ids", "payload"]
    at_state = {
        (r["district_code"], r["sync_object"], r["record_id"]): r
        for r in StateRecord.objects.filter(state_q).values(*state_fields)
    }
    out = []
    for diff, (district, obj, rid) in zip(differences, keys, strict=True):
        d = at_district.get((district.pk, obj.pk, rid))
        s = at_state.get((district.code, obj.name, rid))
        missing = "" if d and s else ("No longer at the district." if not d else "No longer at the state.")
        out.append(SideBySide(diff, pairs(d or {}, s or {}), missing))
    return out


def pairs(d: dict, s: dict) -> list[Pair]:
    """The fields of both sides in one list: school year, parents, then payload by name."""
    rows = [Pair("school_year", d.get("school_year"), s.get("school_year"))]
    for side in ("parent_ids", "payload"):
        a, b = d.get(side) or {}, s.get(side) or {}
        prefix = "parent: " if side == "parent_ids" else ""
        for name in sorted(set(a) | set(b)):
            rows.append(Pair(prefix + name, a.get(name, "—"), b.get(name, "—")))
    return rows


def summary(results: list[DISVerificationResult]) -> dict:
    """The run's totals, as its page states them first."""
    return {
        "objects": len(results),
        "differing_objects": sum(r.differences_count > 0 for r in results),
        "to_resync": sum(r.differences_count for r in results),
        **{f: sum(getattr(r, f) for r in results) for f in FIELDS},
    }


FIELDS = ("only_district", "only_state", "different", "not_allowed", "matching")


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
        "created",
        "resync_link",
    ]
    list_select_related = ["district", "requested_by"]
    list_filter = ["status", "school_year", ("district", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["district__code", "district__name"]
    date_hierarchy = "created_at"
    fields = [
        "district",
        "school_year",
        "objects_compared",
        "status",
        "progress",
        "asked_by",
        "created",
        "started",
        "finished",
        "attempts",
        "message",
        "resync_link",
    ]
    readonly_fields = fields
    # Results are the page's own table (the template), under a summary: not an inline.
    actions = ["resync_differences"]
    # Times in the district's zone, named (core.timefmt), as everywhere a person reads one.
    created = timefmt.column("created_at", "Created")
    started = timefmt.column("started_at", "Started")
    finished = timefmt.column("finished_at", "Finished")
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # get_object first: a run the user may not know of is a 404 before a result is read.
        run = self.get_object(request, object_id)
        results = list(run.results.select_related("sync_object").order_by("id"))
        different = list(
            DISVerificationDifference.objects.filter(
                result__run=run, kind=DISVerificationDifference.Kind.DIFFERENT
            )
            .select_related("result__run__district", "result__sync_object")
            .order_by("result_id", "id")[:SIDE_BY_SIDE]
        )
        extra = {
            "results": results,
            "summary": summary(results),
            "side_by_side": side_by_side(different),
            "side_by_side_max": SIDE_BY_SIDE,
            "differences_url": reverse("admin:verification_disverificationdifference_changelist"),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    @admin.display(description="Requested by")
    def asked_by(self, obj: VerificationRun) -> str:
        # The username as text: the admin's own link to the user's page opens for few.
        return obj.requested_by.username if obj.requested_by else "an operator (command)"

    @admin.display(description="Objects compared")
    def objects_compared(self, obj: VerificationRun) -> str:
        return ", ".join(obj.sync_objects)

    def has_module_permission(self, request):
        return may_view_verification(request.user)

    def has_view_permission(self, request, obj=None):
        return may_view_verification(request.user)

    def has_add_permission(self, request):
        return may_run_verification(request.user)

    def has_delete_permission(self, request, obj=None):
        return may_delete_verification(request.user)

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
            except REFUSALS as e:
                views.refused(request.user, e, f"the one-click resync of verification {run.pk}")
                messages.error(request, f"Verification {run.pk}: {e}")
            else:
                messages.success(request, f"Verification {run.pk}: resync {req.pk} sent.")


class SeenWithTheirRun:
    """Results and differences are seen with their run: the runs the user may know of
    (rights.visible_q, reached through `run_path`) and Verification Summary R; never
    deleted apart from it. The lists, their filters' options and the change pages all
    read get_queryset."""

    run_path: str

    def get_queryset(self, request):
        run = self.run_path
        visible = rights.visible_q(request.user, f"{run}level", f"{run}district")
        return super().get_queryset(request).filter(visible)

    def has_module_permission(self, request):
        return may_view_verification(request.user)

    def has_view_permission(self, request, obj=None):
        return may_view_verification(request.user)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DISVerificationResult)
class DISVerificationResultAdmin(SeenWithTheirRun, NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
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
    run_path = "run__"

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
class DISVerificationDifferenceAdmin(SeenWithTheirRun, NotFoundNotRedirected, ReadOnly, admin.ModelAdmin):
    list_display = ["record_id", "sync_object", "kind", "reason", "detail", "district", "run_link"]
    list_select_related = ["result__run__district", "result__sync_object"]
    # Not-allowed records are kept apart: not every difference is a failure.
    list_filter = ["kind", "reason", ("result__sync_object", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=record_id"]
    run_path = "result__run__"
    fields = ["record_id", "sync_object", "kind", "reason", "detail", "district", "run_link"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("result__run__district", "result__sync_object")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        diff = self.get_object(request, object_id)
        shown = side_by_side([diff]) if diff.kind == DISVerificationDifference.Kind.DIFFERENT else []
        extra = {"side_by_side": shown}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

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
        return may_switch_verification(request.user)

    def has_view_permission(self, request, obj=None):
        return may_switch_verification(request.user)

    def has_change_permission(self, request, obj=None):
        return may_switch_verification(request.user)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.changed_by = request.user
        super().save_model(request, obj, form, change)
