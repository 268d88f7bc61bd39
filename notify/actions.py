"""Webhooks and email subscriptions: check_* refuses (changing nothing), do_* writes.
The admin and the API call these same functions."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from django.db import transaction

from alerts.models import AlertName
from core.errors import ResyncError, RightsError
from resync.models import District

from . import rights
from .models import EmailSubscription, Webhook


def check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in AlertName.values]
    if unknown:
        raise ResyncError(
            f"Unknown alert name {', '.join(map(repr, unknown))}: use one of {', '.join(AlertName.values)}.",
            field="names",
        )
    return sorted(set(names))


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ResyncError(f"{url!r} is not an http:// or https:// address.", field="url")
    return url


def check_webhook(user: User, district: District | None, url: str, names: Iterable[str]) -> list[str]:
    """May `user` post alerts of `district` (None: the state's) to `url`? The clean names."""
    if district is None:
        if not rights.is_state_admin(user):
            raise RightsError("Only a state administrator manages the state's webhooks.")
    elif not rights.hook_districts(user).filter(pk=district.pk).exists():
        raise RightsError(f"You may not manage the webhooks of district {district.code}.")
    check_url(url)
    return check_names(names)


def do_create_webhook(
    user: User, district: District | None, url: str, names: list[str], active: bool = True
) -> Webhook:
    return Webhook.objects.create(district=district, url=url, names=names, active=active, created_by=user)


def do_update_webhook(hook: Webhook, url: str, names: list[str], active: bool) -> Webhook:
    hook.url, hook.names, hook.active = url, names, active
    hook.save(update_fields=["url", "names", "active"])
    return hook


def do_set_subscriptions(user: User, names: Iterable[str]) -> list[str]:
    """Make `names` exactly the alerts mailed to `user`."""
    names = check_names(names)
    with transaction.atomic():
        EmailSubscription.objects.filter(user=user).exclude(name__in=names).delete()
        have = set(EmailSubscription.objects.filter(user=user).values_list("name", flat=True))
        # One save per name (a dozen at most), not bulk_create: each sends the signal the
        # audit trail records it from (audit.signals.WATCHED), as the admin's page does.
        for name in names:
            if name not in have:
                EmailSubscription.objects.create(user=user, name=name)
    return names
