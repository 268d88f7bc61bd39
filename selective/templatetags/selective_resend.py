"""Where a page offers "Resend the failed records (Selective Sync)": the request page
and the Error Log's pages (templates of tool and history, which may not import this
app: it is above them) ask these tags for the link, "" when check_resend_records would
refuse, so the action is offered only where it would be accepted."""

from __future__ import annotations

from django import template
from django.contrib import admin
from django.urls import reverse

from history.models import ErrorLog
from resync.models import ResyncRequest
from resync.rules import Reason
from tool.api import failed_rows

from ..resend import accepts, may_offer
from ..rights import may_use_selective

register = template.Library()


def page() -> str:
    return reverse("admin:verification_selectivesync_resend_records")


@register.simple_tag(takes_context=True)
def records_resend_for_request(context, req: ResyncRequest, steps) -> str:
    """The page resending `req`'s failed records, from its `steps` already on the page."""
    user = context["request"].user
    if not may_offer(s.sync_object.name for s in steps if s.errors) or not may_use_selective(user):
        return ""
    return f"{page()}?step__request__id__exact={req.pk}" if accepts(failed_rows(user, req), user) else ""


@register.simple_tag(takes_context=True)
def records_resend_for_rows(context, rows) -> str:
    """The page resending the failed records of the Error Log rows this page lists (its filters)."""
    request = context["request"]
    if not may_use_selective(request.user) or not accepts(rows, request.user):
        return ""
    return page() + (f"?{request.GET.urlencode()}" if request.GET else "")


@register.simple_tag(takes_context=True)
def records_resend_for_causes(context, causes) -> str:
    """The same for the Error Log by cause, judged first from its groups (no query when
    they are of several districts or objects, or a parent was missing)."""
    request = context["request"]
    if (
        not causes
        or not may_offer(c.object for c in causes)
        or len({c.district_id for c in causes}) > 1
        or any(c.reason == Reason.PARENT_MISSING for c in causes)
        or not may_use_selective(request.user)
    ):
        return ""
    return records_resend_for_rows(context, admin.site._registry[ErrorLog].filtered(request))
