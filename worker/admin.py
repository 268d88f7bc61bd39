"""RQ's own dashboard in the admin, for the state's operators only.

django-rq registers its dashboard (queues, jobs, workers, and buttons that
delete a job or empty a queue) for any staff user, and every district user is
staff. A district user could watch a state request's steps go by and delete
their jobs, holding the state's request up until recovery found it. So every
page of it, the JSON stats included, needs state resync R (state
administrators and superusers); anyone else gets a 404, as for anything they
may not know of. Monitoring with django-rq's RQ_API_TOKEN still works.
"""

from __future__ import annotations

from functools import wraps
from secrets import compare_digest

from django.contrib import admin
from django.http import Http404, HttpRequest
from django.urls import URLPattern
from django_rq import settings as rq_settings
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

from core.errors import log_refusal
from resync import rights


def may_operate_queue(request: HttpRequest) -> bool:
    """State users (and superusers) see RQ's pages; a monitor may bring RQ_API_TOKEN."""
    if rights.is_state(request.user):
        return True
    token = rq_settings.get_api_token()
    header = request.headers.get("Authorization", "")
    sent = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    return bool(token and sent and compare_digest(token, sent))


def operators_only(view):
    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs):
        # The signed-out are sent to the login page (or refused by django-rq's token check) as usual.
        if request.user.is_authenticated and not may_operate_queue(request):
            log_refusal(request.user, "admin", f"RQ dashboard {request.path}")
            raise Http404("Not found.")
        return view(request, *args, **kwargs)

    return guarded


class OperatorQueueAdmin(QueueAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return rights.is_state(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return rights.is_state(request.user)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return rights.is_state(request.user)

    def changelist_view(self, request: HttpRequest, extra_context=None):
        return operators_only(super().changelist_view)(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        # Every view django-rq adds, the unwrapped JSON ones included, goes through the guard.
        return [
            URLPattern(p.pattern, operators_only(p.callback), p.default_args, p.name)
            for p in super().get_urls()
        ]


# django_rq (earlier in INSTALLED_APPS) registered its dashboard for every staff user:
# in its place, the state operators' alone.
if admin.site.is_registered(Dashboard):
    admin.site.unregister(Dashboard)
admin.site.register(Dashboard, OperatorQueueAdmin)
