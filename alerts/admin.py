from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import NotFoundNotRedirected
from resync import rights

from .models import ProcessAlert


@admin.register(ProcessAlert)
class ProcessAlertAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    """Each user's own Process Alerts inbox."""

    list_display = ["created_at", "name", "category", "process", "message", "open_link", "is_read"]
    list_filter = ["name", "process", "category", ("created_at", admin.DateFieldListFilter)]
    date_hierarchy = "created_at"
    search_fields = ["message"]
    actions = ["mark_read"]
    readonly_fields = [
        "name",
        "category",
        "process",
        "message",
        "open_link",
        "district",
        "created_at",
        "read_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(user=request.user).select_related("district", "request")

    def get_fields(self, request, obj=None):
        # A district is told the state asked for a resync, never which request it is
        # (its name, its id, a link to a page it may not open), as in the API.
        if obj is not None and obj.request_id and rights.may_see_request(request.user, obj.request):
            return [*self.readonly_fields, "request"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_urls(self):
        view = self.admin_site.admin_view(self.open_alert)
        return [path("<int:pk>/open/", view, name="alerts_processalert_open"), *super().get_urls()]

    def open_alert(self, request, pk: int):
        """Opening an alert marks it read and takes the user to the related tool."""
        alert = get_object_or_404(self.get_queryset(request), pk=pk)  # someone else's alert is a 404
        ProcessAlert.objects.filter(pk=alert.pk).mark_read()
        return redirect(alert.link or reverse("admin:alerts_processalert_changelist"))

    # Everyone reads their own inbox; nobody writes alerts by hand.
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or obj.user_id == request.user.pk)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.has_view_permission(request, obj)

    @admin.display(description="Read", boolean=True)
    def is_read(self, obj: ProcessAlert) -> bool:
        return obj.read_at is not None

    @admin.display(description="")
    def open_link(self, obj: ProcessAlert):
        return format_html('<a href="{}">Open</a>', reverse("admin:alerts_processalert_open", args=[obj.pk]))

    @admin.action(description="Mark selected alerts read")
    def mark_read(self, request, queryset):
        count = queryset.mark_read()
        messages.success(request, f"{count} alert(s) marked read.")
