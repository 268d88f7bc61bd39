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

import logging

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


# Every refusal of a right, whatever the door, at warning level: who, which door, what.
refusals = logging.getLogger("statesync.refusals")


class RightsError(PermissionError):
    """Refused for lack of a right; the message names what is missing."""


def log_refusal(user, door: str, what: str) -> None:
    """Log that `user` was refused at `door` (admin, api, websocket, job, command): `what` they tried."""
    who = user.username if user is not None and getattr(user, "is_authenticated", False) else "anonymous"
    refusals.warning("refused %s at %s: %s", who, door, what)


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


def may_see_request(user, request) -> bool:
    """The one-row form of `visible`: a request of the user's districts, and for a
    district user never a state request."""
    return may_resync(user, request.district) and (is_state(user) or request.level == "district")


# ---- Verification Summary, Selective Sync and the year switch ------------------
# Their permissions live on the verification app's models (Selective Sync on a
# proxy of ResyncRequest, so its R/W/D are the proxy's view/use/delete) and on
# District for the year switch; each is still combined with the district right.

VERIFY_VIEW = "verification.view_verificationrun"  # Verification Summary R
VERIFY_RUN = "verification.run_verification"  # Verification Summary W
VERIFY_DELETE = "verification.delete_verificationrun"  # Verification Summary D
VERIFY_SWITCH = "verification.change_verificationsetting"  # the state's switch
SELECTIVE_VIEW = "verification.view_selectivesync"  # Selective Sync R
SELECTIVE_USE = "verification.use_selectivesync"  # Selective Sync W
SELECTIVE_DELETE = "verification.delete_selectivesync"  # Selective Sync D
YEAR_SWITCH = "resync.switch_year"

TOOL_STATE_PERMS = [
    VERIFY_VIEW,
    VERIFY_RUN,
    VERIFY_DELETE,
    VERIFY_SWITCH,
    "verification.view_verificationsetting",
    SELECTIVE_VIEW,
    SELECTIVE_USE,
    SELECTIVE_DELETE,
    YEAR_SWITCH,
]
TOOL_DISTRICT_PERMS = [VERIFY_VIEW, VERIFY_RUN, SELECTIVE_VIEW, SELECTIVE_USE, SELECTIVE_DELETE, YEAR_SWITCH]


def _holds(user, perm: str) -> bool:
    return active(user) and user.has_perm(perm)


def district_verification_on() -> bool:
    from verification.models import VerificationSetting

    return VerificationSetting.current().district_initiated


def may_view_verification(user) -> bool:
    return _holds(user, VERIFY_VIEW)


def may_delete_verification(user) -> bool:
    return _holds(user, VERIFY_DELETE)


def may_switch_verification(user) -> bool:
    """The state's switch for district-initiated verification."""
    return is_state(user) and _holds(user, VERIFY_SWITCH)


def check_verification(user, district: District) -> None:
    """May `user` run a verification of `district`? Names what is missing."""
    if not may_resync(user, district):
        raise RightsError(f"You have no right to verify district {district.code}.")
    if not _holds(user, VERIFY_RUN):
        raise RightsError("Running a verification needs the Verification Summary W right.")
    if not is_state(user) and not district_verification_on():
        raise RightsError("The state has switched district-initiated verification off.")


def may_run_verification(user) -> bool:
    """Whether to offer the Run button at all (check_verification decides per district)."""
    return _holds(user, VERIFY_RUN) and (is_state(user) or district_verification_on())


def may_view_selective(user) -> bool:
    return _holds(user, SELECTIVE_VIEW)


def may_use_selective(user) -> bool:
    return _holds(user, SELECTIVE_USE)


def may_delete_selective(user) -> bool:
    return _holds(user, SELECTIVE_DELETE)


def check_selective(user, district: District) -> None:
    if not may_resync(user, district):
        raise RightsError(f"You have no right to resync district {district.code}.")
    if not may_use_selective(user):
        raise RightsError("Selective Sync needs its W right.")


def may_switch_year(user) -> bool:
    return _holds(user, YEAR_SWITCH)


def check_year_switch(user, district: District) -> None:
    if not may_resync(user, district):
        raise RightsError(f"You have no right to manage district {district.code}.")
    if not may_switch_year(user):
        raise RightsError("Switching the school year needs the year switch right.")


def grant_tool_perms(group_model, permission_model) -> None:
    """Give the two ready-made groups the rights above (create_groups predates them).
    Takes the model classes so a data migration can pass its historical ones."""
    for name, perms in ((STATE_ADMINS, TOOL_STATE_PERMS), (DISTRICT_ADMINS, TOOL_DISTRICT_PERMS)):
        group, _ = group_model.objects.get_or_create(name=name)
        for perm in perms:
            app, codename = perm.split(".")
            group.permissions.add(
                permission_model.objects.get(content_type__app_label=app, codename=codename)
            )
