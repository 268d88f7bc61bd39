"""The Selective Sync form, and resending a request's failed records, in the admin.

Views validate, call one action, respond. Their URL names are the SelectiveSync
proxy's (admin:verification_selectivesync_*), as they have always been.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.errors import REFUSALS, log_refusal, status_for
from history.models import ErrorLog
from resync import rights
from tool.api import visible_requests
from tool.views import district_or_404, parse_year, refused

from . import actions, resend
from .rights import may_use_selective

# The Error Log filters that name one request or one district (a request page's link
# names its request): one the user may not see is a 404, as in the API.
REQUEST_FILTER = "step__request__id__exact"
DISTRICT_FILTER = "district__id__exact"


def selective_form(request: HttpRequest, admin_site) -> HttpResponse:
    """Selective Sync: resync single PersonIdentity or Enrollment records."""
    if not may_use_selective(request.user):
        log_refusal(request.user, "admin", "the Selective Sync form")
        raise PermissionDenied
    if request.method == "POST":
        district = district_or_404(request.user, request.POST.get("district"), "the Selective Sync form")
        try:
            checked = actions.check_selective_sync(
                district,
                parse_year(request.POST.get("year")),
                request.POST.get("object", ""),
                request.POST.get("records", ""),
                user=request.user,
            )
            req = actions.do_selective_sync(checked)
        except REFUSALS as e:
            refused(request.user, e, f"a Selective Sync of district {district.code}")
            messages.error(request, str(e))
            return redirect(f"{reverse('admin:verification_selectivesync_add')}?district={district.code}")
        messages.success(request, f"Selective Sync {req.pk} sent: {len(checked.records)} record(s).")
        return redirect("admin:verification_selectivesync_changelist")
    context = {
        **admin_site.each_context(request),
        "title": "Selective Sync",
        "districts": rights.districts(request.user),
        "picked": request.GET.get("district", ""),
        "objects": actions.SELECTIVE_OBJECTS,
    }
    return TemplateResponse(request, "admin/verification/selective_form.html", context)


def named_or_404(request: HttpRequest) -> None:
    """404 for a request or district the address names that the user may not see: they
    may not learn it exists (the API's resend-failed-records answers the same)."""
    user = request.user
    pk = request.GET.get(REQUEST_FILTER, "")
    if pk.isascii() and pk.isdigit() and not visible_requests(user).filter(pk=pk).exists():
        log_refusal(user, "admin", f"resending the failed records of request {pk}")
        raise Http404(f"No resync request {pk} among those you may see.")
    pk = request.GET.get(DISTRICT_FILTER, "")
    if pk.isascii() and pk.isdigit() and not rights.districts(user).filter(pk=pk).exists():
        raise Http404("No such district.")


def resend_records(request: HttpRequest, admin_site) -> HttpResponse:
    """Resend the failed records (Selective Sync) of the Error Log rows its filters select
    (a request's, or any Error Log filter's), as the Error Log shows them to this user:
    GET says which records of which object will be sent, POST sends them; a refusal is
    shown on the page in the words of the API's (selective.resend.check_resend_records)."""
    log = admin_site._registry[ErrorLog]
    if not log.has_view_permission(request):
        raise PermissionDenied
    named_or_404(request)
    query = f"?{request.GET.urlencode()}" if request.GET else ""
    checked = None
    rows, refusal, status = log.resend_rows(request)
    if rows is not None:
        try:
            checked = resend.check_resend_records(rows, request.user)
            if request.method == "POST":
                created = actions.do_selective_sync(checked)
                messages.success(
                    request,
                    f"Selective Sync {created.pk} sent: {len(checked.records)} failed "
                    f"{checked.objects[0]} record(s).",
                )
                return HttpResponseRedirect(
                    reverse("admin:verification_selectivesync_changelist"), status=303
                )
        except REFUSALS as e:
            refused(request.user, e, "resending the failed records")
            refusal, status, checked = str(e), status_for(e), None
    context = {
        **admin_site.each_context(request),
        "title": "Resend the failed records (Selective Sync)?",
        "opts": log.opts,
        "checked": checked,
        "refusal": refusal,
        "back": reverse("admin:history_errorlog_changelist") + query,
    }
    return TemplateResponse(
        request, "admin/selective/resend_records_confirmation.html", context, status=status
    )
