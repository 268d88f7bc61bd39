from django.contrib import admin
from django.utils.html import format_html, format_html_join

from . import planner
from .models import SyncObject


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
