from django.contrib import admin
from django.utils.html import format_html, format_html_join

from . import planner, rights
from .models import SyncField, SyncFieldChange, SyncObject


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


def _may_view_catalog(request) -> bool:
    return request.user.has_perm("resync.view_syncobject") or rights.may_edit_schemas(request.user)


class SyncFieldInline(admin.TabularInline):
    """The object's schema: editable by state administrators only (rights.may_edit_schemas),
    read-only for everyone who may see the catalog."""

    model = SyncField
    fields = ["name", "type", "required", "max_length", "codes", "owner", "description", "position", "label"]
    extra = 0
    ordering = ["position", "name"]

    def get_queryset(self, request):
        # Each row is titled by its __str__ ("Enrollment.grade"): its object in the same query.
        return super().get_queryset(request).select_related("sync_object")

    def has_view_permission(self, request, obj=None):
        return _may_view_catalog(request)

    def has_add_permission(self, request, obj=None):
        return rights.may_edit_schemas(request.user)

    def has_change_permission(self, request, obj=None):
        return rights.may_edit_schemas(request.user)

    def has_delete_permission(self, request, obj=None):
        return rights.may_edit_schemas(request.user)


class SyncFieldChangeInline(admin.TabularInline):
    """Who changed the schema, when, and what (old → new): written by the models, never here."""

    model = SyncFieldChange
    verbose_name_plural = "Schema changes"
    fields = ["changed_at", "changed_by", "field", "action", "what"]
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        # Each row is titled by its __str__, naming its object: in the same query, with its author.
        return super().get_queryset(request).select_related("sync_object", "changed_by")

    def has_view_permission(self, request, obj=None):
        return _may_view_catalog(request)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="What changed")
    def what(self, change: SyncFieldChange) -> str:
        return "; ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in change.changes.items())


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
        "allows_extra",
        "note",
    ]
    inlines = [SyncFieldInline, SyncFieldChangeInline]
    # What a state administrator may not change on the object itself: the schema is theirs,
    # the catalog (enabled, editions, years) stays with whoever holds change_syncobject.
    catalog_fields = ["year_scoped", "syncs_other_years", "editions", "enabled"]

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

    def has_change_permission(self, request, obj=None):
        # Only on one object's page: the list's editable "enabled" stays the catalog's.
        return super().has_change_permission(request, obj) or (
            obj is not None and rights.may_edit_schemas(request.user)
        )

    def get_readonly_fields(self, request, obj=None):
        if super().has_change_permission(request, obj):
            return self.readonly_fields
        return [*self.readonly_fields, *self.catalog_fields]

    def save_model(self, request, obj, form, change):
        # allows_extra changes through the model, which records it like a field change.
        if "allows_extra" not in form.changed_data:
            return super().save_model(request, obj, form, change)
        wanted = obj.allows_extra
        obj.allows_extra = not wanted
        super().save_model(request, obj, form, change)
        obj.do_set_allows_extra(wanted, by=request.user)

    def save_formset(self, request, form, formset, change):
        if formset.model is not SyncField:
            return super().save_formset(request, form, formset, change)
        # Each field saves (and is deleted) with its author: SyncField records the change.
        instances = formset.save(commit=False)
        for field in formset.deleted_objects:
            field.delete(by=request.user)
        for field in instances:
            field.save(by=request.user)

    def has_add_permission(self, request):
        return False  # the catalog comes from the data migration

    def has_delete_permission(self, request, obj=None):
        return False
