from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from core import timefmt
from core.admin import NotFoundNotRedirected
from resync import rights

from . import links
from .models import ProcessAlert


class ReadFilter(admin.SimpleListFilter):
    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("no", "Unread"), ("yes", "Read")]

    def queryset(self, request, queryset):
        if self.value() in ("no", "yes"):
            return queryset.filter(read_at__isnull=self.value() == "no")
        return queryset


@admin.register(ProcessAlert)
class ProcessAlertAdmin(NotFoundNotRedirected, admin.ModelAdmin):
    """Each user's own Process Alerts inbox."""

    list_display = ["when", "name", "category", "process", "shown_message", "open_link", "is_read"]
    list_display_links = ["when"]
    list_filter = [ReadFilter, "name", "process", "category", ("created_at", admin.DateFieldListFilter)]
    date_hierarchy = "created_at"
    search_fields = ["message"]
    actions = ["mark_read", "mark_unread"]
    readonly_fields = [
        "name",
        "category",
        "process",
        "message",
        "open_link",
        "district_name",
        "when",
        "read",
    ]

    class Media:
        css = {"all": ["resync/alerts.css"]}

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(user=request.user)
            .select_related("user", "district", "request__district")
        )

    def get_list_display(self, request):
        # Each row's Open link only where the user may still open its page (alerts.links),
        # each distinct link checked once for the page.
        shown = links.opener(request)

        @admin.display(description="")
        def open_link(obj: ProcessAlert):
            return self.open_link(obj) if obj.link and shown(obj.link) else "—"

        return [open_link if f == "open_link" else f for f in super().get_list_display(request)]

    def get_fields(self, request, obj=None):
        # A district is told the state asked for a resync, never which request it is
        # (its name, its id, a link to a page it may not open), as in the API.
        fields = list(self.readonly_fields)
        if obj is not None and not links.may_open(request, obj.link):
            fields.remove("open_link")
        if obj is not None and obj.request_id and rights.may_see_request(request.user, obj.request):
            fields.append("request")
        return fields

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_urls(self):
        view = self.admin_site.admin_view(self.open_alert)
        mark = self.admin_site.admin_view(require_POST(self.mark_alert))
        return [
            path("<int:pk>/open/", view, name="alerts_processalert_open"),
            path("<int:pk>/mark/", mark, name="alerts_processalert_mark"),
            *super().get_urls(),
        ]

    def mark_alert(self, request, pk: int):
        """The alert's page's Mark read / Mark unread button (read=1 or 0), back to the page."""
        alert = get_object_or_404(self.get_queryset(request), pk=pk)  # someone else's alert is a 404
        rows = ProcessAlert.objects.filter(pk=alert.pk)
        if request.POST.get("read") == "0":
            rows.mark_unread()
            messages.success(request, "Marked unread.")
        else:
            rows.mark_read()
            messages.success(request, "Marked read.")
        return redirect(reverse("admin:alerts_processalert_change", args=[alert.pk]))

    def open_alert(self, request, pk: int):
        """Opening an alert marks it read and takes the user to the related tool."""
        alert = get_object_or_404(self.get_queryset(request), pk=pk)  # someone else's alert is a 404
        ProcessAlert.objects.filter(pk=alert.pk).mark_read()
        # Checked now, not when written: a page closed to the user since is not opened.
        if links.may_open(request, alert.link):
            return redirect(alert.link)
        return redirect(reverse("admin:alerts_processalert_change", args=[alert.pk]))

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

    @admin.display(description="District")
    def district_name(self, obj: ProcessAlert) -> str:
        # Its name, not the admin's link to the district's page: that page may be closed to
        # the user by now, and the alert's own link (Open) is the one checked (alerts.links).
        return str(obj.district) if obj.district else "—"

    when = timefmt.column("created_at", "Created")

    @admin.display(description="Read at", ordering="read_at")
    def read(self, obj: ProcessAlert) -> str:
        return timefmt.when(obj.read_at, obj.district) or "Unread"

    @admin.display(description="Message", ordering="message")
    def shown_message(self, obj: ProcessAlert):
        # Unread rows stand out (alerts.css bolds the row holding this mark).
        if obj.read_at is None:
            return format_html('<strong class="alert-unread">{}</strong>', obj.message)
        return obj.message

    @admin.display(description="")
    def open_link(self, obj: ProcessAlert):
        # Opening marks the alert read; get_list_display and get_fields show it only when
        # the user may still open its page (alerts.links).
        return format_html('<a href="{}">Open</a>', reverse("admin:alerts_processalert_open", args=[obj.pk]))

    @admin.action(description="Mark selected alerts read")
    def mark_read(self, request, queryset):
        count = queryset.mark_read()
        messages.success(request, f"{count} alert(s) marked read.")

    @admin.action(description="Mark selected alerts unread")
    def mark_unread(self, request, queryset):
        count = queryset.mark_unread()
        messages.success(request, f"{count} alert(s) marked unread.")
