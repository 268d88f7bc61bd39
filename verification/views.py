"""The admin pages of the Verification Summary that are not plain change lists: the
form that runs one and the one-click resync.

Views validate, call one action, respond.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.errors import REFUSALS, log_refusal
from resync import rights
from resync.models import SyncObject
from tool.views import district_or_404, parse_year, refused

from . import actions as verify
from .models import VerificationRun
from .rights import may_run_verification, may_view_verification


def run_or_404(user, pk) -> VerificationRun:
    # Another district's run and the state's runs read as absent to a district user.
    run = VerificationRun.objects.visible_to(user).filter(pk=pk).select_related("district").first()
    if run is None:
        log_refusal(user, "admin", f"verification {pk} (absent or not theirs)")
        raise Http404("No such verification.")
    return run


def run_form(request: HttpRequest, admin_site) -> HttpResponse:
    """Run a verification: district, school year, objects (none picked: every object)."""
    if not may_run_verification(request.user):
        log_refusal(request.user, "admin", "the verification run form")
        raise PermissionDenied
    if request.method == "POST":
        district = district_or_404(request.user, request.POST.get("district"), "the verification form")
        try:
            checked = verify.check_verification(
                district,
                parse_year(request.POST.get("year")),
                request.POST.getlist("objects") or None,
                user=request.user,
            )
            run = verify.do_request_verification(checked)
        except REFUSALS as e:
            refused(request.user, e, f"a verification of district {district.code}")
            messages.error(request, str(e))
            return redirect(f"{reverse('admin:verification_verificationrun_add')}?district={district.code}")
        messages.success(request, f"Verification {run.pk} queued: {len(checked.objects)} object(s).")
        return redirect("admin:verification_verificationrun_change", run.pk)
    context = {
        **admin_site.each_context(request),
        "title": "Run a verification",
        "districts": rights.districts(request.user),
        "picked": request.GET.get("district", ""),
        "objects": SyncObject.objects.enabled().filter(name__in=rights.object_names(request.user)),
    }
    return TemplateResponse(request, "admin/verification/run_form.html", context)


@require_http_methods(["GET", "POST"])
def run_resync(request: HttpRequest, pk: int, admin_site) -> HttpResponse:
    """The resync of exactly the objects a verification found different: GET asks
    (what will be sent, in order, and which parents Check Dependencies adds), POST sends."""
    if not may_view_verification(request.user):
        log_refusal(request.user, "admin", f"the one-click resync of verification {pk}")
        raise PermissionDenied
    run = run_or_404(request.user, pk)
    try:
        checked = verify.check_verification_resync(run, request.user)
        if request.method == "GET":
            context = {
                **admin_site.each_context(request),
                "title": f"Resync what verification {run.pk} found different?",
                "opts": VerificationRun._meta,
                "run": run,
                "differing": [n for n in checked.plan.order if n not in checked.plan.added],
                "added": [n for n in checked.plan.order if n in checked.plan.added],  # run order
                "order": checked.plan.order,
            }
            return TemplateResponse(request, "admin/verification/confirm_resync.html", context)
        req = verify.do_verification_resync(run, checked)
    except REFUSALS as e:
        refused(request.user, e, f"the one-click resync of verification {run.pk}")
        messages.error(request, str(e))
    else:
        messages.success(
            request, f"Resync {req.pk} sent with Check Dependencies: {', '.join(checked.plan.order)}."
        )
    return redirect("admin:verification_verificationrun_change", run.pk)
