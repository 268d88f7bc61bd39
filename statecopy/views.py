"""The admin's export of the state's copy: a form (object, one district or all, CSV or
NDJSON) whose answer streams through statecopy.export, as the API's export does.

State users only (state resync R, resync.rights.is_state); anyone else gets a 404,
as for every state-only admin page (the state tool, RQ's dashboard).
"""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core.errors import log_refusal
from resync import rights
from resync.models import District, StateRecord, SyncObject

from . import export


class ExportForm(forms.Form):
    object = forms.ModelChoiceField(
        SyncObject.objects.none(), to_field_name="name", label="Sync object", empty_label=None
    )
    district = forms.ModelChoiceField(
        District.objects.none(), to_field_name="code", required=False, empty_label="All districts"
    )
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("ndjson", "NDJSON")], initial="csv")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["object"].queryset = SyncObject.objects.enabled().order_by("name")
        self.fields["district"].queryset = District.objects.select_related("state").order_by("code")


def state_export(request: HttpRequest, admin_site) -> HttpResponse:
    if not rights.is_state(request.user):
        log_refusal(request.user, "admin", "the state's copy export")
        raise Http404("Only state users read the state's copy.")
    form = ExportForm(request.GET if "object" in request.GET else None)
    if form.is_bound and form.is_valid():
        q = form.cleaned_data
        district = q["district"].code if q["district"] else None
        return export.response(request, q["object"], district, q["format"])
    context = {
        **admin_site.each_context(request),
        "title": "Export the state's copy",
        "form": form,
        "opts": StateRecord._meta,
    }
    return TemplateResponse(request, "admin/statecopy/export.html", context)
