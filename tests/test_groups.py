"""The ready-made groups: a permission added to a group's list reaches an existing
install through a migration (resync 0009 re-applies resync.groups), not only a fresh one."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from resync import groups
from selective.rights import SELECTIVE_USE
from verification.rights import VERIFY_RUN

BEFORE = ("resync", "0008_request_steps_failed")
REAPPLY = ("resync", "0009_group_permissions")


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def permission(name: str) -> Permission:
    app, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app, codename=codename)


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # has_perm caches; read the rights again


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_an_existing_installs_groups_a_permission_they_lack(catalog, back_to_the_latest):
    migrate(BEFORE)
    district_admins = Group.objects.get(name=groups.DISTRICT_ADMINS)
    # An install seeded before Selective Sync W joined the district administrators' list.
    district_admins.permissions.remove(permission(SELECTIVE_USE))
    clerk = User.objects.create_user("dora", is_staff=True)
    clerk.groups.add(district_admins)
    assert not clerk.has_perm(SELECTIVE_USE)
    assert clerk.has_perm(VERIFY_RUN)

    migrate(REAPPLY)

    assert district_admins.permissions.filter(pk=permission(SELECTIVE_USE).pk).exists()
    clerk = fresh(clerk)
    assert clerk.has_perm(SELECTIVE_USE)
    assert clerk.has_perm(VERIFY_RUN)  # what the group held before is still held


@pytest.mark.django_db(transaction=True)
def test_the_migration_only_adds_and_can_run_again(catalog, back_to_the_latest):
    migrate(BEFORE)
    state_admins = Group.objects.get(name=groups.STATE_ADMINS)
    # An operator gave the district administrators a right the lists do not name.
    extra = permission("auth.view_user")
    Group.objects.get(name=groups.DISTRICT_ADMINS).permissions.add(extra)
    held = set(state_admins.permissions.values_list("pk", flat=True))

    migrate(REAPPLY)
    migrate(BEFORE)  # backwards is a no-op
    migrate(REAPPLY)

    assert Group.objects.get(name=groups.DISTRICT_ADMINS).permissions.filter(pk=extra.pk).exists()
    assert set(state_admins.permissions.values_list("pk", flat=True)) == held
    # loads 0002 gave them district data W when the test database was migrated.
    every = {*groups.STATE_ADMIN_PERMS, *groups.TOOL_STATE_PERMS, *groups.LOAD_STATE_PERMS}
    assert {f"{p.content_type.app_label}.{p.codename}" for p in state_admins.permissions.all()} == every


def test_the_lists_name_every_tool_right_the_features_define():
    """resync.groups names the tools' rights as strings (it sits below the features):
    they must be the very permissions the features check."""
    from selective import rights as selective
    from verification import rights as verification
    from yearswitch import rights as yearswitch

    state = {
        verification.VERIFY_VIEW,
        verification.VERIFY_RUN,
        verification.VERIFY_DELETE,
        verification.VERIFY_SWITCH,
        selective.SELECTIVE_VIEW,
        selective.SELECTIVE_USE,
        selective.SELECTIVE_DELETE,
        yearswitch.YEAR_SWITCH,
    }
    district = state - {verification.VERIFY_DELETE, verification.VERIFY_SWITCH}
    assert state <= set(groups.TOOL_STATE_PERMS)
    assert set(groups.TOOL_DISTRICT_PERMS) == district
