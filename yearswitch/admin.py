"""The year-switch overview: per district, whether it may switch now (the end-of-year
rule), and after a switch whether both mandatory full resyncs happened.

Its page keeps the URL of the SchoolYearSwitch proxy it has always had
(/admin/verification/schoolyearswitch/).
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core import timefmt
from core.admin import NotFoundNotRedirected, ReadOnly
from core.errors import REFUSALS
from resync import rights
from resync.models import school_year_name
from verification.models import SchoolYearSwitch

from . import actions
from .rights import may_see_overview, may_switch_year


def _link(url: str, text) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


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
        # What the switch itself reads (yearswitch.actions), so the page and the rule agree.
        qs = super().get_queryset(request).filter(pk__in=rights.districts(request.user).values("pk"))
        return actions.with_year_resyncs(qs)

    def has_module_permission(self, request):
        return may_see_overview(request.user)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return super().get_actions(request) if may_switch_year(request.user) else {}

    @admin.display(description="Last data change", ordering="changed")
    def last_change(self, obj):
        return obj.changed or "—"

    @admin.display(description="Ready to switch", boolean=True)
    def ready(self, obj) -> bool:
        """The rule the switch applies (yearswitch.actions.may_switch)."""
        return actions.may_switch(obj.end_of_year_id, obj.year_switched_at, obj.start_of_year_id)

    @admin.display(description="End-of-year resync (before the switch)")
    def end_of_year(self, obj):
        req = obj.end_of_year_request
        if obj.year_switched_at is None:
            return "—"
        if req is None:
            return "Missing"
        url = reverse("admin:resync_resyncrequest_change", args=[req.pk])
        # Named by its year and time, in the district's zone: the row is its district's.
        return _link(
            url,
            f"Resync of {school_year_name(req.school_year)}, finished {timefmt.when(req.finished_at, obj)}",
        )

    @admin.display(description="Start-of-year resync (after the switch)")
    def start_of_year(self, obj):
        if obj.year_switched_at is None:
            return "—"
        if obj.start_of_year_id is None:
            return "Missing"
        url = reverse("admin:resync_resyncrequest_change", args=[obj.start_of_year_id])
        return _link(url, f"Resync {obj.start_of_year_id}")

    @admin.action(description="Switch to the next school year (needs the end-of-year full resync)")
    def switch_year(self, request, queryset):
        """Irreversible, so first a confirmation page (as Django's delete action has) that
        says, district by district, what the switch does or why it is refused; the
        switch happens only on its POST, and each district is checked again then."""
        if request.POST.get("post") != "yes":
            return self.confirm_switch(request, queryset)
        for district in queryset:
            try:
                switch = actions.check_year_switch(district, request.user)
                switched = actions.do_year_switch(switch)
            except REFUSALS as e:
                messages.error(request, str(e))
            else:
                # As Django's own admin does for a change: the object's history names who and what.
                self.log_change(
                    request,
                    district,
                    f"Switched the school year from {switch.from_year} to {switched.scope_year}.",
                )
                messages.success(
                    request, f"District {district.code} now syncs {switch.from_year + 1}: alert sent."
                )

    def confirm_switch(self, request, queryset) -> TemplateResponse:
        rows = []
        for district in queryset.order_by("code"):
            try:
                switch = actions.check_year_switch(district, request.user)
            except REFUSALS as e:
                rows.append({"district": district, "refused": str(e)})
            else:
                rows.append(
                    {"district": district, "end_of_year": switch.end_of_year, "to": district.scope_year + 1}
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Switch to the next school year?",
            "opts": self.model._meta,
            "rows": rows,
            "allowed": [r for r in rows if "refused" not in r],
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/yearswitch/confirm_switch.html", context)
