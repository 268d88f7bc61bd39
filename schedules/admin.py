"""The schedules' admin: next runs in each schedule's zone, pause and resume, and the
requests each one sent. Every save passes check_schedule, like the API's."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core import timefmt
from core.errors import REFUSALS, ResyncError
from resync import rights
from resync.models import State

from . import actions
from .models import Schedule


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = [
            "name", "district", "state", "objects_asked", "check_dependencies", "cron", "time_zone",
            "window_start", "window_end", "missed", "paused",
        ]  # fmt: skip

    user = None  # set by ScheduleAdmin.get_form: the one saving

    def _post_clean(self) -> None:
        # After the form's values are on the instance (construct_instance): check those.
        super()._post_clean()
        if self.errors:
            return
        try:
            actions.check_schedule(self.instance, self.user)
        except REFUSALS as e:
            field = getattr(e, "field", None) if isinstance(e, ResyncError) else None
            field = {"objects": "objects_asked"}.get(field, field)
            self.add_error(field if field in self.fields else None, str(e))


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = ["name", "target", "what", "cron", "time_zone", "next_run", "paused", "last_message"]
    list_filter = ["paused", "missed"]
    list_select_related = ["district", "district__state", "state"]
    readonly_fields = ["level", "next_run", "last_run", "last_message", "created_by", "sent"]
    actions = ["pause", "resume"]
    raw_id_fields = ["district"]

    next_run = timefmt.column("next_run_at", "Next run", owner="time_zone")
    last_run = timefmt.column("last_run_at", "Last run", owner="time_zone")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        return actions.visible(request.user)

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user
        return form

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        # Only what the user may name: another district is "not a valid choice", as if absent.
        if db_field.name == "district":
            kwargs["queryset"] = rights.districts(request.user)
        elif db_field.name == "state":
            kwargs["queryset"] = (
                State.objects.all() if actions.may_schedule_all(request.user) else State.objects.none()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _may(self, request: HttpRequest, obj: Schedule | None) -> bool:
        if obj is None:
            return actions.may_schedule_all(request.user) or (
                settings.SCHEDULES_FOR_DISTRICTS and rights.districts(request.user).exists()
            )
        try:
            actions.check_manage(request.user, obj)
        except REFUSALS:
            return False
        return True

    def has_module_permission(self, request: HttpRequest) -> bool:
        return rights.active(request.user) and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may(request, None)

    def has_change_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return self._may(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        return self._may(request, obj)

    def save_model(self, request: HttpRequest, obj: Schedule, form, change: bool) -> None:
        actions.do_save(obj, request.user)

    @admin.display(description="Target")
    def target(self, obj: Schedule) -> str:
        return obj.target

    @admin.display(description="Objects")
    def what(self, obj: Schedule) -> str:
        return "Full resync" if obj.full else ", ".join(obj.objects_asked)

    @admin.display(description="Requests it sent (latest 20)")
    def sent(self, obj: Schedule) -> str:
        rows = obj.requests.select_related("district")[:20] if obj.pk else []
        return format_html_join(
            "",
            '<div><a href="{}">{}</a> — {}</div>',
            (
                (reverse("admin:resync_resyncrequest_change", args=[r.pk]), str(r), r.get_status_display())
                for r in rows
            ),
        ) or format_html("{}", "None yet.")

    def _set_paused(self, request: HttpRequest, queryset: QuerySet[Schedule], paused: bool) -> None:
        done = 0
        for schedule in queryset:
            try:
                actions.check_manage(request.user, schedule)
            except REFUSALS as e:
                self.message_user(request, f"{schedule}: {e}", messages.ERROR)
                continue
            actions.do_pause(schedule, paused)
            done += 1
        self.message_user(request, f"{'Paused' if paused else 'Resumed'} {done} schedule(s).")

    @admin.action(description="Pause the selected schedules")
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_paused(request, queryset, True)

    @admin.action(description="Resume the selected schedules (from their next occurrence)")
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_paused(request, queryset, False)
