from django.contrib import admin, messages
from django.utils.html import format_html

from .models import ProcessAlert


@admin.register(ProcessAlert)
class ProcessAlertAdmin(admin.ModelAdmin):
    """Each user's own Process Alerts inbox."""

    list_display = ["created_at", "name", "category", "process", "message", "open_link", "is_read"]
    list_filter = ["name", "process", "category", ("created_at", admin.DateFieldListFilter)]
    date_hierarchy = "created_at"
    search_fields = ["message"]
    actions = ["mark_read"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(user=request.user)

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
        return format_html('<a href="{}">Open</a>', obj.link) if obj.link else ""

    @admin.action(description="Mark selected alerts read")
    def mark_read(self, request, queryset):
        count = queryset.mark_read()
        messages.success(request, f"{count} alert(s) marked read.")
