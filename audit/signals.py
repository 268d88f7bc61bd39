"""Changes recorded where Django tells of them, whichever code made them: rights (a
user's permissions and groups, a group's permissions, guardian's per-object rights:
grant_district, the admin's user and group pages), schema changes (each SyncFieldChange
mirrored), settings changed in the admin (Django's own LogEntry, mirrored for the
models in SETTINGS) and data loads (each Load row). Bulk writes (the migrations' seeding) send
no signals and are not recorded."""

from __future__ import annotations

from django.apps import apps
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.db.models.signals import m2m_changed, post_delete, post_save
from guardian.models import BaseObjectPermission

from audit.trail import record
from resync.models import District, ResyncRequest, SyncFieldChange

VERBS = {"post_add": "granted", "post_remove": "revoked", "post_clear": "revoked"}


def _names(model, pks) -> str:
    if model is Permission:
        rows = Permission.objects.filter(pk__in=pks).select_related("content_type")
        return ", ".join(sorted(f"{p.content_type.app_label}.{p.codename}" for p in rows))
    return ", ".join(sorted(str(o) for o in model.objects.filter(pk__in=pks)))


def m2m_rights(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
    """A user's permissions or groups, or a group's permissions, changed (either side)."""
    verb = VERBS.get(action)
    if verb is None:
        return
    if action == "post_clear":
        what = "all"  # Django sends no pk_set for a clear
    else:
        what = _names(model, pk_set)
    if sender is User.groups.through:
        noun, verb = "group", {"granted": "joined", "revoked": "left"}[verb]
    else:
        noun = "right"
    record(f"{noun}.{verb}", instance, detail=what)


def object_right(sender, instance, created: bool = False, **kwargs) -> None:
    """A guardian per-object right (a district's, a sync object's) was granted or revoked."""
    if kwargs.get("signal") is post_save and not created:
        return
    verb = "granted" if kwargs.get("signal") is post_save else "revoked"
    holder = instance.user if hasattr(instance, "user_id") else instance.group
    try:
        target = instance.content_object
    except Exception:  # deleted along with the object it was on
        target = None
    district = target if isinstance(target, District) else None
    perm = instance.permission
    record(
        f"right.{verb}",
        holder,
        district=district,
        detail=f"{perm.content_type.app_label}.{perm.codename} on {target or 'a deleted object'}",
    )


def schema_change(sender, instance: SyncFieldChange, created: bool, **kwargs) -> None:
    """A field schema change, kept in full as SyncFieldChange: mirrored here, linked by id."""
    if created:
        record(
            "schema.changed",
            instance.sync_object,
            user=instance.changed_by,
            detail=f"{instance} (schema change {instance.pk})",
        )


def data_loaded(sender, instance, created: bool, **kwargs) -> None:
    if created:
        counts = ("read", "inserted", "updated", "unchanged", "deleted", "rejected")
        record(
            "data.loaded",
            instance,
            user=instance.loaded_by,
            detail=", ".join(f"{getattr(instance, c)} {c}" for c in counts),
        )


# The admin's settings pages, whose saves Django logs as LogEntry rows: mirrored. Not
# the rows the trail records by its own hooks (users, groups, history deletions, loads),
# which would be there twice, nor those the admin never edits.
SETTINGS = {
    "resync.district",
    "resync.syncobject",
    "verification.verificationsetting",
    "schedules.schedule",
    "notify.webhook",
}
ADMIN_VERBS = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}


def admin_logged(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    """A change the admin logged (Django's LogEntry): its message, as the admin wrote it."""
    ct = instance.content_type
    label = f"{ct.app_label}.{ct.model}" if ct else ""
    if not created or label not in SETTINGS:
        return
    obj = None
    if instance.action_flag != DELETION:
        try:
            obj = instance.get_edited_object()
        except Exception:  # gone since
            obj = None
    district = obj if isinstance(obj, District) else getattr(obj, "district", None)
    # A state-level row (a state schedule) is the state's, as its request would be.
    level = getattr(obj, "level", ResyncRequest.Level.DISTRICT) or ResyncRequest.Level.DISTRICT
    message = instance.get_change_message() or ADMIN_VERBS.get(instance.action_flag, "")
    record(
        f"setting.{ADMIN_VERBS.get(instance.action_flag, 'changed')}",
        obj,
        user=instance.user,
        district=district if isinstance(district, District) else None,
        level=level,
        detail=message
        if obj is not None
        else f"{label} {instance.object_id} {instance.object_repr}: {message}",
    )


def connect() -> None:
    for through in (User.user_permissions.through, User.groups.through, Group.permissions.through):
        m2m_changed.connect(m2m_rights, sender=through, dispatch_uid=f"audit-{through._meta.label}")
    for model in apps.get_models():
        if issubclass(model, BaseObjectPermission):
            post_save.connect(object_right, sender=model, dispatch_uid=f"audit-save-{model._meta.label}")
            post_delete.connect(object_right, sender=model, dispatch_uid=f"audit-del-{model._meta.label}")
    post_save.connect(schema_change, sender=SyncFieldChange, dispatch_uid="audit-schema")
    post_save.connect(admin_logged, sender=LogEntry, dispatch_uid="audit-admin-log")
    post_save.connect(data_loaded, sender=apps.get_model("loads", "Load"), dispatch_uid="audit-load")
