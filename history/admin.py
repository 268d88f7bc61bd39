from django.contrib import admin
from django.utils.html import format_html

from resync.admin import ReadOnly

from .models import DISBatchHistory, ErrorLog


def dot(colour: str):
    return format_html(
        '<span class="status-dot status-{}" title="{}">●</span> {}', colour, colour, colour.title()
    )


@admin.register(DISBatchHistory)
class DISBatchHistoryAdmin(ReadOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "request_id",
        "district",
        "school_year",
        "sync_object",
        "status_dot",
        "processed",
        "errors",
        "started_at",
        "ended_at",
    ]
    list_select_related = ["district", "sync_object"]
    list_filter = ["status", "school_year", "district"]
    search_fields = ["sync_object__name", "district__code"]
    date_hierarchy = "started_at"

    class Media:
        css = {"all": ["resync/status.css"]}

    @admin.display(description="Status", ordering="status")
    def status_dot(self, obj: DISBatchHistory):
        return dot(obj.colour)


@admin.register(ErrorLog)
class ErrorLogAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "district", "sync_object", "record_id", "reason", "message"]
    list_select_related = ["district", "sync_object"]
    list_filter = ["reason", "district", "sync_object"]
    search_fields = ["message"]
    date_hierarchy = "created_at"
