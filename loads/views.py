"""The admin's upload pages: the form, the upload's page (progress, preview, verdict),
its progress as JSON, the confirm and the report of refused rows.

loads.admin wires them as pages of UploadAdmin. Each step checks the district data
W right (loads.rights.check_load_right) again: a district the user may not see is a
404 (they may not learn it exists), a missing right on one they may see is a 403.
Views validate, call one function of loads.jobs or loads.actions, respond.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.errors import REFUSALS, ResyncError, RightsError, log_refusal
from resync import rights
from resync.models import District, SyncObject

from . import jobs
from .actions import check_load
from .models import Upload
from .rights import check_load_right


class UploadForm(forms.Form):
    object = forms.ChoiceField(label="Sync object")
    year = forms.TypedChoiceField(label="School year", required=False, coerce=int, empty_value=None)
    file = forms.FileField(help_text="CSV (.csv) with a header row, or NDJSON (.ndjson, .jsonl).")
    snapshot = forms.BooleanField(
        required=False,
        help_text="The file is the whole object (and year): records it does not hold are deleted.",
    )
    skip_invalid = forms.BooleanField(
        label="Skip invalid rows",
        required=False,
        help_text="Load the valid rows; the refused ones, with their reasons, go to a report to download.",
    )

    def __init__(self, district: District, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names: list[str] = []
        for year in district.years:  # what is offered in any year the district may load
            names += [
                n
                for n in SyncObject.objects.offered(district, year).values_list("name", flat=True)
                if n not in names
            ]
        self.fields["object"].choices = [(n, n) for n in names]
        self.fields["year"].choices = [("", "Scoped year (none for an object not tied to a year)")] + [
            (y, f"{y - 1}-{y % 100:02d}") for y in sorted(district.years)
        ]


def district_or_404(user, code: str) -> District:
    """The district among the user's, else 404 (a code that exists is a logged refusal)."""
    district = rights.district_named(user, code)
    if district is None:
        if District.objects.filter(code=code).exists():
            log_refusal(user, "admin", f"an upload to district {code}")
        raise Http404("No such district.")
    return district


def upload_or_404(user, pk: int) -> Upload:
    """The upload, if it is to one of the user's districts; and the load right, else 403."""
    upload = (
        Upload.objects.select_related("district__state", "sync_object", "uploaded_by", "load")
        .filter(pk=pk, district__in=rights.districts(user))
        .first()
    )
    if upload is None:
        if Upload.objects.filter(pk=pk).exists():
            log_refusal(user, "admin", f"upload {pk}")
        raise Http404("No such upload.")
    allowed(user, upload.district)
    return upload


def allowed(user, district: District) -> None:
    try:
        check_load_right(user, district)
    except RightsError as e:
        log_refusal(user, "admin", f"an upload to district {district.code}: {e}")
        raise PermissionDenied(str(e)) from None


def upload_form(request: HttpRequest, code: str, admin_site) -> HttpResponse:
    district = district_or_404(request.user, code)
    allowed(request.user, district)
    form = UploadForm(district, request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        q = form.cleaned_data
        try:
            checked = check_load(district, q["object"], q["year"], request.user)
            upload = jobs.do_upload(checked, q["file"], q["snapshot"], q["skip_invalid"])
        except RightsError as e:
            log_refusal(request.user, "admin", f"an upload to district {district.code}: {e}")
            raise PermissionDenied(str(e)) from None
        except ResyncError as e:
            form.add_error(e.field if e.field in form.fields else None, str(e))
        else:
            messages.success(request, f"{upload.name} uploaded: it is being checked.")
            return redirect("admin:loads_upload_change", upload.pk)
    context = {
        **admin_site.each_context(request),
        "title": f"Upload records: {district}",
        "district": district,
        "form": form,
        "opts": Upload._meta,
    }
    return TemplateResponse(request, "admin/loads/upload_form.html", context)


def upload_page(request: HttpRequest, pk: int, admin_site) -> HttpResponse:
    upload = upload_or_404(request.user, pk)
    jobs.do_fail_if_lost(upload)
    verdict = upload.verdict or {}
    preview = verdict.get("preview") or {"columns": [], "rows": []}
    columns = preview["columns"]
    context = {
        **admin_site.each_context(request),
        "title": f"Upload {upload.pk}: {upload.name}",
        "upload": upload,
        "running": upload.status in (Upload.Status.CHECKING, Upload.Status.LOADING),
        "progress": jobs.progress_of(upload),
        "verdict": verdict,
        "columns": columns,
        "rows": [
            {
                "line": r["line"],
                "unreadable": r.get("unreadable"),
                "cells": [r.get("cells", {}).get(c, "") for c in columns],
            }
            for r in preview["rows"]
        ],
        "may_confirm": upload.status == Upload.Status.CHECKED,
        "report": upload.skip_invalid and upload.file and jobs.report_path(upload).exists(),
        "opts": Upload._meta,
        "poll": {"url": reverse("admin:loads_upload_progress", args=[upload.pk])},
    }
    return TemplateResponse(request, "admin/loads/upload.html", context)


def upload_progress(request: HttpRequest, pk: int, admin_site) -> JsonResponse:
    """What the upload's page polls while a job runs: its status and the rows read."""
    upload = upload_or_404(request.user, pk)
    jobs.do_fail_if_lost(upload)
    running = upload.status in (Upload.Status.CHECKING, Upload.Status.LOADING)
    return JsonResponse({"status": upload.status, "progress": jobs.progress_of(upload), "running": running})


@require_POST
def upload_confirm(request: HttpRequest, pk: int, admin_site) -> HttpResponse:
    upload = upload_or_404(request.user, pk)
    try:
        jobs.check_confirm(request.user, upload)
        jobs.do_confirm(upload)
    except RightsError as e:
        log_refusal(request.user, "admin", f"upload {upload.pk}: {e}")
        raise PermissionDenied(str(e)) from None
    except REFUSALS as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Upload {upload.pk} confirmed: it is being loaded.")
    return redirect("admin:loads_upload_change", upload.pk)


def upload_report(request: HttpRequest, pk: int, admin_site) -> FileResponse:
    upload = upload_or_404(request.user, pk)
    path = jobs.report_path(upload) if upload.skip_invalid else None
    if path is None or not path.exists():
        raise Http404("This upload has no report of refused rows.")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"upload-{upload.pk}-refused.csv",
        content_type="text/csv",
    )
