"""Changes recorded where Django tells of them, whichever code made them: rights (a
user's permissions, groups and status flags, a group's permissions, guardian's per-object
rights: grant_district, the admin's user and group pages), schema changes (each
SyncFieldChange mirrored), settings changed in the admin (Django's own LogEntry, mirrored
for the models in SETTINGS), the settings people change through every door (schedules,
webhooks, email subscriptions: the model's own save and delete, WATCHED), history deleted
(Selective Syncs, verification runs) and data loads (each Load row). Bulk writes (the
migrations' seeding, a queryset's update) send no signals and are not recorded."""

from __future__ import annotations

from django.apps import apps
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.db.models import Model, QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from guardian.models import BaseObjectPermission

from audit import doors
from audit.trail import record
from resync.models import District, ResyncRequest, SyncFieldChange, school_year_name

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
# Schedules and webhooks are not here: the API and the admin's actions (pause, resume)
# change them too, and WATCHED records every door's change once, the admin's included.
SETTINGS = {
    "resync.district",
    "resync.syncobject",
    "verification.verificationsetting",
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


# The settings people change through more than one door (admin, API, admin actions,
# commands): recorded from the model's own save and delete, so no door is missed and each
# records the same action names as the admin's mirror (setting.added, .changed, .deleted).
# Each names the fields kept out of the entry: what the system itself moves (a schedule's
# next run, claimed by every tick) and what is never written down (a webhook's secret).
WATCHED = {
    "schedules.Schedule": {"next_run_at", "last_run_at", "last_message", "created_at", "created_by", "level"},
    "notify.Webhook": {"secret", "created_at", "created_by"},
    "notify.EmailSubscription": set(),
}


def _fields(model) -> list:
    skipped = WATCHED[model._meta.label]
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in skipped]


def _values(obj: Model) -> dict:
    return {f.name: getattr(obj, f.attname) for f in _fields(type(obj))}


def change_message(old: dict, new: dict, labels: dict[str, str]) -> str:
    """What changed, old → new, in field order: "" when nothing people set did."""
    parts = [f"{labels[k]}: {old[k]!r} → {new[k]!r}" for k in new if k in old and old[k] != new[k]]
    return ("Changed " + "; ".join(parts) + ".") if parts else ""


def _level(obj: Model) -> str:
    # A state schedule is the state's, as its requests are: a district never sees its entries.
    return getattr(obj, "level", "") or ResyncRequest.Level.DISTRICT


def setting_before(sender, instance: Model, update_fields=None, **kwargs) -> None:
    """Keep what a watched row held before this save, to name what the save changed."""
    instance._audit_before = None
    if instance.pk is None or instance._state.adding:
        return
    names = [f.attname for f in _fields(sender)]
    if update_fields is not None:
        names = [n for n in names if n in update_fields or n.removesuffix("_id") in update_fields]
        if not names:
            return  # only fields the trail leaves out (a tick's claim, a last message)
    before = sender._base_manager.filter(pk=instance.pk).values(*names).first()
    if before is not None:
        by_attname = {f.attname: f.name for f in _fields(sender)}
        instance._audit_before = {by_attname[k]: v for k, v in before.items()}


def setting_saved(sender, instance: Model, created: bool, **kwargs) -> None:
    if created:
        record("setting.added", instance, level=_level(instance), detail=f"Added {instance}.")
        return
    before = getattr(instance, "_audit_before", None)
    if not before:
        return
    labels = {f.name: str(f.verbose_name).capitalize() for f in _fields(sender)}
    message = change_message(before, _values(instance), labels)
    if message:
        record("setting.changed", instance, level=_level(instance), detail=message)


def _own(sender, origin) -> bool:
    """Was the row deleted for itself, not along with what it hung on (a district, a user)?
    Those deletions are the owner's to record; and a district deleted meanwhile could not
    be named by an entry written now."""
    if isinstance(origin, QuerySet):
        return issubclass(origin.model, sender)
    return isinstance(origin, sender)


def setting_deleted(sender, instance: Model, origin=None, **kwargs) -> None:
    if _own(sender, origin):
        record("setting.deleted", instance, level=_level(instance), detail=f"Deleted {instance}.")


def history_deleted(sender, instance: Model, origin=None, **kwargs) -> None:
    """A Selective Sync or a verification run deleted from its history (its D right):
    one entry per row, naming it, at its level (a state's is the state's)."""
    if not _own(sender, origin):
        return
    objects = ", ".join(getattr(instance, "objects_asked", None) or getattr(instance, "sync_objects", []))
    records = getattr(instance, "records", None) or []
    if records:
        objects += " records " + ", ".join(map(str, records[:20])) + (" …" if len(records) > 20 else "")
    record(
        f"{sender._meta.model_name}.deleted",
        instance,
        district=instance.district,
        level=_level(instance),
        detail=f"Deleted {sender._meta.verbose_name} {instance.pk} ({objects or 'every object'}) "
        f"for {school_year_name(instance.school_year)}.",
    )


def verification_requested(sender, instance, created: bool, **kwargs) -> None:
    """A verification run asked for (the admin, the API, a command): a request like a
    resync's, recorded by whom and at its level; the worker's saves after are not."""
    if created:
        record(
            "verification.requested",
            instance,
            user=instance.requested_by,
            level=_level(instance),
            detail=f"{', '.join(instance.sync_objects)} for {school_year_name(instance.school_year)}",
        )


def district_added(sender, instance: District, created: bool, **kwargs) -> None:
    """A district made outside the admin (add_district, the demo): the admin's own are its
    LogEntry's, mirrored with its message; the system's (fixtures, migrations) nobody's."""
    if created and doors.current() not in (doors.ADMIN, doors.SYSTEM):
        record("setting.added", instance, detail=f"Added district {instance} of {instance.state.code}.")


def account_added(sender, instance: Model, created: bool, **kwargs) -> None:
    """A user or group made by a person (the admin's pages, a command of ours): the
    system's (fixtures, seeding, migrations) are nobody's change."""
    if created and doors.current() != doors.SYSTEM:
        record(f"{sender._meta.model_name}.added", instance, detail=f"Added {instance}.")


def account_deleting(sender, instance: Model, origin=None, **kwargs) -> None:
    """Before the row goes (pre_delete): an entry naming a user being deleted, even by
    themselves, is then one their deletion clears like every other reference to them."""
    if doors.current() != doors.SYSTEM and _own(sender, origin):
        record(f"{sender._meta.model_name}.deleted", instance, detail=f"Deleted {instance}.")


def token_changed(sender, instance, created: bool = False, origin=None, **kwargs) -> None:
    """An API token made or deleted for a user (the admin's Tokens page): a credential.
    The entry names the token's user, never the key (a token's str() is its key)."""
    if doors.current() == doors.SYSTEM:
        return
    if kwargs.get("signal") is post_save:
        if created:
            record("token.added", instance.user, detail=f"An API token for {instance.user}.")
    elif _own(sender, origin):
        record("token.deleted", instance.user, detail=f"The API token of {instance.user}.")


# A user's flags are rights too: the admin's user page switches them (superuser, staff, active).
FLAGS = {"is_superuser": "superuser status", "is_staff": "staff status", "is_active": "active"}


def flags_before(sender, instance: User, update_fields=None, **kwargs) -> None:
    instance._audit_flags = None
    if instance.pk is None or instance._state.adding:
        return
    if update_fields is not None and not set(FLAGS) & set(update_fields):
        return  # a login's last_login, a password: no flag changes
    instance._audit_flags = User._base_manager.filter(pk=instance.pk).values(*FLAGS).first()


def flags_saved(sender, instance: User, created: bool, **kwargs) -> None:
    before = getattr(instance, "_audit_flags", None)
    if created or not before:
        return
    for flag, name in FLAGS.items():
        now = getattr(instance, flag)
        if before[flag] != now:
            record(f"right.{'granted' if now else 'revoked'}", instance, detail=name)


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
    for label in WATCHED:
        model = apps.get_model(label)
        pre_save.connect(setting_before, sender=model, dispatch_uid=f"audit-before-{label}")
        post_save.connect(setting_saved, sender=model, dispatch_uid=f"audit-saved-{label}")
        post_delete.connect(setting_deleted, sender=model, dispatch_uid=f"audit-deleted-{label}")
    # SelectiveSync is a proxy: its deletions are sent as its own, not ResyncRequest's.
    for label in ("verification.SelectiveSync", "verification.VerificationRun"):
        post_delete.connect(
            history_deleted, sender=apps.get_model(label), dispatch_uid=f"audit-history-{label}"
        )
    post_save.connect(district_added, sender=District, dispatch_uid="audit-district-added")
    post_save.connect(
        verification_requested,
        sender=apps.get_model("verification", "VerificationRun"),
        dispatch_uid="audit-verification-requested",
    )
    for model in (User, Group):
        post_save.connect(account_added, sender=model, dispatch_uid=f"audit-added-{model._meta.label}")
        pre_delete.connect(account_deleting, sender=model, dispatch_uid=f"audit-del-{model._meta.label}")
    # The admin's Tokens page saves the TokenProxy proxy: signals name the proxy, not Token.
    for token in (apps.get_model("authtoken", "Token"), apps.get_model("authtoken", "TokenProxy")):
        label = token._meta.label
        post_save.connect(token_changed, sender=token, dispatch_uid=f"audit-token-added-{label}")
        post_delete.connect(token_changed, sender=token, dispatch_uid=f"audit-token-deleted-{label}")
    pre_save.connect(flags_before, sender=User, dispatch_uid="audit-flags-before")
    post_save.connect(flags_saved, sender=User, dispatch_uid="audit-flags")
