"""The Selective Sync form: resync single records from the admin.

Views validate, call one action, respond. Its URL names are the SelectiveSync
proxy's (admin:verification_selectivesync_*), as they have always been.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.errors import REFUSALS, log_refusal
from resync import rights
from tool.views import district_or_404, parse_year, refused

from . import actions
from .rights import may_use_selective


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
