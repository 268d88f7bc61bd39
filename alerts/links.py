"""An alert's link, only for a user who may open its page (issue 14, item 12).

An alert is written once, for many users, and read later: its page may have closed
to the user since (a right withdrawn, a state request's page a district user never
may open). So the link is checked when shown, against the page's own rule: the
district tool's through rights.district_named, an admin change page or list through
its ModelAdmin (the same get_queryset and view permission that answer the page
itself). A link to anything else is dropped: nothing links where nobody checked.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import Resolver404, resolve

from resync import rights

# The district tool's pages: the tool and what hangs on it answer the same district rule.
DISTRICT_PAGES = {"resync_tool"}


def may_open(request: HttpRequest, link: str) -> bool:
    """May request.user open `link` (a path of this site)?"""
    if not link:
        return False
    try:
        match = resolve(urlsplit(link).path)
    except Resolver404:
        return False
    if match.namespace != admin.site.name:
        return False
    if match.url_name in DISTRICT_PAGES:
        return rights.district_named(request.user, match.kwargs.get("code")) is not None
    for model, model_admin in admin.site._registry.items():
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if match.url_name == prefix + "changelist":
            return model_admin.has_view_or_change_permission(request)
        if match.url_name == prefix + "change":
            # The page's own queryset (its rights), not get_object: a check is not a refusal to log.
            try:
                obj = model_admin.get_queryset(request).filter(pk=match.kwargs.get("object_id")).first()
            except (ValueError, ValidationError):
                return False
            return obj is not None and model_admin.has_view_or_change_permission(request, obj)
    return False


def opener(request: HttpRequest) -> Callable[[str], str]:
    """`link` if request.user may open it, else "": each link checked once per request,
    so a list of alerts costs a few queries per page it links to, not per alert."""
    seen: dict[str, bool] = {}

    def shown(link: str) -> str:
        if link not in seen:
            seen[link] = may_open(request, link)
        return link if seen[link] else ""

    return shown
