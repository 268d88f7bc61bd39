"""Who may do what: the one place that decides.

The admin, the API, the RQ job (again at run time), the websocket consumer and
the alert fan-out all ask these functions. Rights map onto Django and
django-guardian permissions (the README has the table):

- a district right: `resync.resync_district` on the District row, or as a
  global permission for state users (every district);
- a tool right per sync object: `resync.resync_object` on the SyncObject row,
  or global;
- state rights: `resync.view_state_resync` (R) and `resync.send_state_resync` (W);
- history and Error Log: the models' own view/delete permissions.
"""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user, get_users_with_perms

from resync.models import District, SyncObject

DISTRICT = "resync.resync_district"
OBJECT = "resync.resync_object"
STATE_VIEW = "resync.view_state_resync"
STATE_SEND = "resync.send_state_resync"

DISTRICT_ADMINS = "District Administrator"
STATE_ADMINS = "State Administrator"


class RightsError(PermissionError):
    """Refused for lack of a right; the message names what is missing."""


def active(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def districts(user) -> QuerySet[District]:
    """The districts `user` may see and resync (every one for a state user)."""
    if not active(user):
        return District.objects.none()
    return get_objects_for_user(user, DISTRICT, District.objects.all(), accept_global_perms=True)


def may_resync(user, district: District) -> bool:
    return active(user) and (user.has_perm(DISTRICT) or user.has_perm(DISTRICT, district))


def is_state(user) -> bool:
    """State users see every district's results and state requests."""
    return active(user) and user.has_perm(STATE_VIEW)


def may_send_state(user) -> bool:
    return active(user) and user.has_perm(STATE_SEND)


def object_names(user) -> set[str]:
    """The sync objects `user` holds the tool right for."""
    if not active(user):
        return set()
    qs = get_objects_for_user(user, OBJECT, SyncObject.objects.all(), accept_global_perms=True)
    return set(qs.values_list("name", flat=True))


def check_objects(user, order: tuple[str, ...], added: tuple[str, ...]) -> None:
    """Refuse a plan holding objects the user has no right for, naming them;
    parents added by Check Dependencies are named apart, never dropped."""
    allowed = object_names(user)
    missing = [n for n in order if n not in allowed]
    if not missing:
        return
    chosen = [n for n in missing if n not in added]
    parents = [n for n in missing if n in added]
    parts = []
    if chosen:
        parts.append("You have no tool right to resync " + ", ".join(chosen) + ".")
    if parents:
        parts.append("Check Dependencies needs parents you may not resync: " + ", ".join(parents) + ".")
    raise RightsError(" ".join(parts))


def alert_recipients(district: District) -> QuerySet[User]:
    """Every active user with the tool right for `district`: its district users and the state's."""
    perm = Permission.objects.get(content_type__app_label="resync", codename="resync_district")
    local = get_users_with_perms(district, only_with_perms_in=["resync_district"], with_group_users=True)
    everywhere = User.objects.filter(
        Q(is_superuser=True) | Q(user_permissions=perm) | Q(groups__permissions=perm)
    )
    return User.objects.filter(
        Q(pk__in=local.values("pk")) | Q(pk__in=everywhere.values("pk")), is_active=True
    )


def check_request(user, district: District, level: str) -> None:
    """May `user` ask for a resync of `district` at `level` ("district" or "state")?"""
    if not may_resync(user, district):
        raise RightsError(f"You have no right to resync district {district.code}.")
    if level == "state" and not may_send_state(user):
        raise RightsError("Sending a state resync request needs the state resync W right.")


def still_allowed(user, district: District, level: str, object_name: str) -> str:
    """Re-checked by the job at run time: why the requester may no longer run this step, or ''."""
    if user is None:
        return ""  # asked by the system (a command run by an operator)
    try:
        check_request(user, district, level)
    except RightsError as e:
        return str(e)
    if object_name not in object_names(user):
        return f"{user.username} no longer holds the tool right for {object_name}."
    return ""


STATE_ADMIN_PERMS = [
    DISTRICT,
    OBJECT,
    STATE_VIEW,
    STATE_SEND,
    "resync.view_district",
    "resync.view_syncobject",
    "resync.view_resyncrequest",
    "history.view_disbatchhistory",
    "history.delete_disbatchhistory",
    "history.view_errorlog",
    "history.delete_errorlog",
]
DISTRICT_ADMIN_PERMS = [
    "resync.view_syncobject",
    "resync.view_resyncrequest",
    "history.view_disbatchhistory",
    "history.delete_disbatchhistory",
    "history.view_errorlog",
    "history.delete_errorlog",
]


def create_groups(group_model, permission_model, sync_object_model, rule_model) -> None:
    """Create the two ready-made groups. Takes the model classes so the data
    migration can pass its historical ones."""

    def perms(names: list[str]) -> list:
        out = []
        for name in names:
            app, codename = name.split(".")
            out.append(permission_model.objects.get(content_type__app_label=app, codename=codename))
        return out

    state, _ = group_model.objects.get_or_create(name=STATE_ADMINS)
    state.permissions.set(perms(STATE_ADMIN_PERMS))
    district, _ = group_model.objects.get_or_create(name=DISTRICT_ADMINS)
    district.permissions.set(perms(DISTRICT_ADMIN_PERMS))
    # District administrators hold the tool right for every sync object; a
    # district user outside the group gets object rights one by one.
    (resync_object,) = perms([OBJECT])
    rule_model.objects.bulk_create(
        [
            rule_model(group=district, permission=resync_object, content_object=o)
            for o in sync_object_model.objects.all()
        ],
        ignore_conflicts=True,
    )


def visible(user, qs: QuerySet, level: str = "request__level") -> QuerySet:
    """Narrow `qs` (rows with a `district`) to what `user` may see: their
    districts' rows, and for a district user never the state's requests."""
    qs = qs.filter(district__in=districts(user))
    return qs if is_state(user) else qs.filter(**{level: "district"})
