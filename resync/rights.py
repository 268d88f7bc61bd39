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

These are the base rights every feature builds on. A feature's own rights live
beside it (verification.rights, selective.rights, yearswitch.rights) and combine
these; the groups that hold them are seeded by resync.groups.
"""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user, get_users_with_perms

from core.errors import RightsError
from resync.models import District, ResyncRequest, SyncObject

DISTRICT = "resync.resync_district"
OBJECT = "resync.resync_object"
STATE_VIEW = "resync.view_state_resync"
STATE_SEND = "resync.send_state_resync"


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


def may_edit_schemas(user) -> bool:
    """State administrators edit the sync objects' field schemas (issue 13): the state
    R and W rights together, as a schema binds every district of the state."""
    return is_state(user) and may_send_state(user)


def object_names(user) -> set[str]:
    """The sync objects `user` holds the tool right for (as remembered, if they are)."""
    if not active(user):
        return set()
    remembered = getattr(user, "_resync_object_names", None)
    if remembered is not None:
        return remembered
    qs = get_objects_for_user(user, OBJECT, SyncObject.objects.all(), accept_global_perms=True)
    return set(qs.values_list("name", flat=True))


def remember(user: User | None) -> User | None:
    """`user` with their tool rights read once and kept on this very instance (Django
    keeps its global permissions there too). For a one-job request's requester, read
    afresh for each layer and asked at each of its steps (why_refused): a query a step
    cost a state request's small objects more than their records (issue 16)."""
    if user is not None:
        user._resync_object_names = None
        user._resync_object_names = object_names(user)
    return user


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


def alert_recipients_of(districts: list[District]) -> dict[int, list[User]]:
    """alert_recipients of each district, by district id, in four queries however many
    districts (a state request's: one query set per district took it 4 ms each)."""
    from resync.models import DistrictGroupObjectPermission, DistrictUserObjectPermission

    perm = Permission.objects.get(content_type__app_label="resync", codename="resync_district")
    ids = [d.pk for d in districts]
    everywhere = User.objects.filter(
        Q(is_superuser=True) | Q(user_permissions=perm) | Q(groups__permissions=perm), is_active=True
    ).values_list("pk", flat=True)
    local: dict[int, set[int]] = {pk: set(everywhere) for pk in ids}
    direct = DistrictUserObjectPermission.objects.filter(permission=perm, content_object_id__in=ids)
    for district_id, user_id in direct.values_list("content_object_id", "user_id"):
        local[district_id].add(user_id)
    grouped = DistrictGroupObjectPermission.objects.filter(permission=perm, content_object_id__in=ids)
    for district_id, user_id in grouped.filter(group__user__isnull=False).values_list(
        "content_object_id", "group__user"
    ):
        local[district_id].add(user_id)
    users = User.objects.in_bulk({u for found in local.values() for u in found})
    return {
        pk: sorted((users[u] for u in found if u in users and users[u].is_active), key=lambda u: u.pk)
        for pk, found in local.items()
    }


def check_request(user, district: District, level: str) -> None:
    """May `user` ask for a resync of `district` at `level` (a ResyncRequest.Level)?"""
    if not may_resync(user, district):
        raise RightsError(f"You have no right to resync district {district.code}.")
    if level == ResyncRequest.Level.STATE and not may_send_state(user):
        raise RightsError("Sending a state resync request needs the state resync W right.")


def why_refused(user, district: District, level: str, object_name: str) -> str:
    """Why `user` may not run a step of `object_name` for `district` at `level` now, or "":
    re-checked when the step runs (runner.lifecycle.refusal), as rights may have changed."""
    if user is None:
        return ""  # asked by the system (a command run by an operator)
    try:
        check_request(user, district, level)
    except RightsError as e:
        return str(e)
    if object_name not in object_names(user):
        return f"{user.username} no longer holds the tool right for {object_name}."
    return ""


def holds(user, perm: str) -> bool:
    """An active user holding the global permission `perm` (the features' R/W/D rights)."""
    return active(user) and user.has_perm(perm)


def district_named(user, code: str | None) -> District | None:
    """The district `code` among those `user` may see, or None: the same answer for a
    code that does not exist and for one the user may not even learn exists."""
    return districts(user).select_related("state").filter(code=code or "").first()


# ---- A district user never sees a state request --------------------------------
# One rule, in its two forms: `level_shown` for one row, `visible_q` for a query. A
# state request (and a state user's verification run) is the state's: the district
# is alerted that the state asked, never shown what it asked for.


def level_shown(level: str, state: bool) -> bool:
    """May a user (`state`: one who sees state requests, rights.is_state) see a row of `level`?"""
    return state or level == ResyncRequest.Level.DISTRICT


def visible_q(user, level: str = "request__level", district: str = "district") -> Q:
    """The rows `user` may see, reached through the paths `district` and `level`: their
    districts' rows, and for a district user only the district level's."""
    q = Q(**{f"{district}__in": districts(user)})
    return q if is_state(user) else q & Q(**{level: ResyncRequest.Level.DISTRICT})


def visible(user, qs: QuerySet, level: str = "request__level") -> QuerySet:
    """Narrow `qs` (rows with a `district`) to what `user` may see (visible_q)."""
    return qs.filter(visible_q(user, level))


def may_see_request(user, request: ResyncRequest) -> bool:
    """The one-row form of `visible`: a request of the user's districts, and for a
    district user never a state request."""
    return may_resync(user, request.district) and level_shown(request.level, is_state(user))
