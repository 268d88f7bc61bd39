"""Who may manage which webhooks: state administrators the state's and every district's,
a district administrator their own district's, nobody else (README, Rights)."""

from __future__ import annotations

from django.db.models import QuerySet

from resync import rights
from resync.groups import DISTRICT_ADMINS
from resync.models import District

from .models import Webhook


def is_state_admin(user) -> bool:
    return rights.may_edit_schemas(user)  # the state R and W rights together


def hook_districts(user) -> QuerySet[District]:
    """The districts whose webhooks `user` manages."""
    if is_state_admin(user):
        return District.objects.all()
    if not rights.active(user) or not user.groups.filter(name=DISTRICT_ADMINS).exists():
        return District.objects.none()
    return rights.districts(user)


def may_manage_any(user) -> bool:
    return is_state_admin(user) or hook_districts(user).exists()


def webhooks(user) -> QuerySet[Webhook]:
    """The webhooks `user` may see and change; any other is a 404 to them."""
    if is_state_admin(user):
        return Webhook.objects.all()
    return Webhook.objects.filter(district__in=hook_districts(user))
