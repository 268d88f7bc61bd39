"""The two ready-made groups and the permissions they hold.

The migrations seed them (resync 0005, verification 0002) and re-apply them (resync
0009): every function takes the model classes, so a data migration can pass its
historical ones. Permissions are named as strings here, not through the features'
constants: this module sits below the features that define them.

Adding a permission to a group: add it to a list below and add a data migration
running `reapply` (as resync 0009 does), depending on the latest migration of every
app named in the lists. Fresh installs and existing ones then end with the same groups.
The older migrations read these lists too, so a permission of a model that a later
migration makes goes in a list of its own, granted by that migration's `reapply`.
"""

from __future__ import annotations

from django.contrib.auth.management import create_permissions

DISTRICT_ADMINS = "District Administrator"
STATE_ADMINS = "State Administrator"

# The base rights (resync and history), seeded when the groups are made (resync 0005).
DISTRICT_ADMIN_PERMS = [
    "resync.view_syncobject",
    "resync.view_resyncrequest",
    "history.view_disbatchhistory",
    "history.delete_disbatchhistory",
    "history.view_errorlog",
    "history.delete_errorlog",
]
# The state's administrators hold what the districts' do, and the district and object
# rights everywhere, and the state's own (R and W).
STATE_ADMIN_PERMS = [
    "resync.resync_district",
    "resync.resync_object",
    "resync.view_state_resync",
    "resync.send_state_resync",
    "resync.view_district",
    *DISTRICT_ADMIN_PERMS,
]

# The tools' rights: Verification Summary (verification.rights), Selective Sync
# (selective.rights) and the year switch (yearswitch.rights), granted once the
# verification app exists (verification 0002).
TOOL_STATE_PERMS = [
    "verification.view_verificationrun",
    "verification.run_verification",
    "verification.delete_verificationrun",
    "verification.change_verificationsetting",
    "verification.view_verificationsetting",
    "verification.view_selectivesync",
    "verification.use_selectivesync",
    "verification.delete_selectivesync",
    "resync.switch_year",
]
TOOL_DISTRICT_PERMS = [
    "verification.view_verificationrun",
    "verification.run_verification",
    "verification.view_selectivesync",
    "verification.use_selectivesync",
    "verification.delete_selectivesync",
    "resync.switch_year",
]

# District data W (loads.rights), made by loads 0001 and granted by loads 0002: a list of
# its own, as resync 0009 runs before the loads app exists.
LOAD_STATE_PERMS = ["loads.load_district_data"]

# Every app whose permissions the lists name.
APPS = ("resync", "history", "verification")


def _permissions(permission_model, names: list[str]) -> list:
    """The Permission rows of `names` ("app.codename"); a name with no row raises."""
    found = []
    for name in names:
        app, codename = name.split(".")
        found.append(permission_model.objects.get(content_type__app_label=app, codename=codename))
    return found


def grant(group_model, permission_model, perms_by_group: dict[str, list[str]], exactly: bool = False) -> None:
    """Give each group (made if missing) its permissions. By default it only adds: a
    permission an operator gave a group stays, and running it again changes nothing.
    `exactly` leaves each group holding its list alone (the groups as shipped)."""
    for name, names in perms_by_group.items():
        group, _ = group_model.objects.get_or_create(name=name)
        perms = _permissions(permission_model, names)
        if exactly:
            group.permissions.set(perms)
        else:
            group.permissions.add(*perms)


def grant_object_rights(group_model, permission_model, sync_object_model, rule_model) -> None:
    """District administrators hold the tool right for every sync object; a district
    user outside the group gets object rights one by one."""
    district, _ = group_model.objects.get_or_create(name=DISTRICT_ADMINS)
    (resync_object,) = _permissions(permission_model, ["resync.resync_object"])
    rule_model.objects.bulk_create(
        [
            rule_model(group=district, permission=resync_object, content_object=o)
            for o in sync_object_model.objects.all()
        ],
        ignore_conflicts=True,
    )


BASE = {STATE_ADMINS: STATE_ADMIN_PERMS, DISTRICT_ADMINS: DISTRICT_ADMIN_PERMS}
TOOLS = {STATE_ADMINS: TOOL_STATE_PERMS, DISTRICT_ADMINS: TOOL_DISTRICT_PERMS}


def create_groups(group_model, permission_model, sync_object_model, rule_model) -> None:
    """The two groups as first shipped: exactly their base rights, and the district
    administrators' object rights."""
    grant(group_model, permission_model, BASE, exactly=True)
    grant_object_rights(group_model, permission_model, sync_object_model, rule_model)


def grant_tool_perms(group_model, permission_model) -> None:
    """Give the two groups the tools' rights (create_groups predates them)."""
    grant(group_model, permission_model, TOOLS)


def make_permissions(apps, labels: tuple[str, ...]) -> None:
    """Create the permissions of the apps `labels` from the historical models: Django
    makes them only after all migrations ran, and a group migration needs them now."""
    for label in labels:
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None


def reapply(apps, schema_editor) -> None:
    """RunPython body: every permission of every list, added (never removed) on a fresh
    install or an existing one whose groups predate a permission added to a list."""
    make_permissions(apps, APPS)
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    grant(Group, Permission, BASE)
    grant(Group, Permission, TOOLS)
    grant_object_rights(
        Group,
        Permission,
        apps.get_model("resync", "SyncObject"),
        apps.get_model("resync", "SyncObjectGroupObjectPermission"),
    )
