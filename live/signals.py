"""Tell open live sockets at once when what they may hear could have changed.

A socket's groups follow its user's rights (resync.rights): the district right
(guardian object permissions on District, or global), state R and Verification
Summary R, through the user's own permissions and their groups', and whether the
user is active at all. Each change below sends `rights.changed` to the users it may
touch, after the commit (events.send), and their sockets re-check; a logout sends
`session.ended` to that session's sockets. What no signal sees (bulk SQL, an expired
session) the sockets' periodic re-check catches.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import receiver

from core import events
from resync.models import DistrictGroupObjectPermission, DistrictUserObjectPermission

User = get_user_model()


def tell(user_ids: Iterable[int]) -> None:
    """These users' sockets re-check their rights once the current transaction commits."""
    groups = sorted({events.user_group(pk) for pk in user_ids if pk is not None})
    if groups:
        events.send(groups, events.RIGHTS_CHANGED)


def members(group_ids: Iterable[int]) -> list[int]:
    return list(User.objects.filter(groups__in=list(group_ids)).values_list("pk", flat=True).distinct())


@receiver(post_save, sender=DistrictUserObjectPermission)
@receiver(post_delete, sender=DistrictUserObjectPermission)
def district_right_of_user(sender, instance, **kwargs) -> None:
    tell([instance.user_id])


@receiver(post_save, sender=DistrictGroupObjectPermission)
@receiver(post_delete, sender=DistrictGroupObjectPermission)
def district_right_of_group(sender, instance, **kwargs) -> None:
    tell(members([instance.group_id]))


@receiver(post_save, sender=User)
def user_saved(sender, instance, created, update_fields=None, **kwargs) -> None:
    # A login stamps last_login on every sign-in: that changes no right.
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    tell([instance.pk])  # is_active, is_superuser


@receiver(post_delete, sender=User)
def user_deleted(sender, instance, **kwargs) -> None:
    tell([instance.pk])


@receiver(pre_delete, sender=Group)
def group_deleted(sender, instance, **kwargs) -> None:
    # Before: afterwards nobody is a member any more. The re-check runs after the commit.
    tell(members([instance.pk]))


@receiver(m2m_changed, sender=User.groups.through)
def membership_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action in ("post_add", "post_remove"):
        tell([instance.pk] if not reverse else pk_set or ())
    elif action == "pre_clear":
        tell([instance.pk] if not reverse else instance.user_set.values_list("pk", flat=True))


@receiver(m2m_changed, sender=User.user_permissions.through)
def user_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action in ("post_add", "post_remove"):
        tell([instance.pk] if not reverse else pk_set or ())
    elif action == "pre_clear":
        tell([instance.pk] if not reverse else instance.user_set.values_list("pk", flat=True))


@receiver(m2m_changed, sender=Group.permissions.through)
def group_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    # Forward: `instance` is a Group; reverse: a Permission and `pk_set` its groups.
    if action in ("post_add", "post_remove"):
        tell(members([instance.pk] if not reverse else pk_set or ()))
    elif action == "pre_clear":
        groups = [instance.pk] if not reverse else instance.group_set.values_list("pk", flat=True)
        tell(members(groups))


@receiver(user_logged_out)
def logged_out(sender, request, user, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        events.send([events.session_group(key)], events.SESSION_ENDED)
