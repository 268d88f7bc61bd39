"""Adding a district from the admin, so a newcomer needs no shell (issue 13).

The admin's Add district page (DistrictAdmin.add_view) takes what `manage.py
add_district` takes, the state, the district and its schools, and hands it to the
same loads.actions.do_add_district: both refuse the same things for the same reasons.
Only the state's administrators add districts; a district user never does.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from core.errors import ResyncError, log_refusal
from core.parsers import is_whole_number
from loads.actions import do_add_district, parse_school
from resync import rights
from resync.models import District


def may_add_districts(user) -> bool:
    """State administrators (the state's R and W together, as for the field schemas): a
    district binds the state's reports, and a district user may not make one."""
    return rights.is_state(user) and rights.may_send_state(user)


class AddDistrictForm(forms.Form):
    """The command's arguments as fields. Nothing is checked here, not even presence:
    do_add_district checks every value, so the admin names a mistake as the command does."""

    state = forms.CharField(
        label="State code", required=False, strip=False, help_text="As KY; created when missing."
    )
    state_name = forms.CharField(
        required=False, strip=False, help_text="A new state's name (default: its code)."
    )
    edition = forms.CharField(
        required=False, strip=False, help_text="A new state's edition (default: its code)."
    )
    code = forms.CharField(
        label="District code", required=False, strip=False, help_text="The state district number, as 205."
    )
    name = forms.CharField(required=False, strip=False)
    year = forms.CharField(
        label="Scoped school year", required=False, help_text="By its end: 2027 is 2026-27."
    )
    schools = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="One school a line, NUMBER:NAME, as 001:Adair High.",
    )


# do_add_district's error fields -> the form's.
FIELDS = {"state_code": "state", "district_code": "code", "school": "schools"}


def add_district(request: HttpRequest, model_admin) -> HttpResponse:
    """The Add district page: on a valid POST, the district, its state and schools, all
    or nothing; on a refusal, the form again with the reason beside its field."""
    if not may_add_districts(request.user):
        log_refusal(request.user, "admin", "add a district")
        raise PermissionDenied
    form = AddDistrictForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            year = data["year"].strip()
            if not is_whole_number(year):
                raise ResyncError(
                    f"School year {data['year']!r} is not a year: give its ending year, as 2027 for 2026-27.",
                    "year",
                )
            schools = [parse_school(line) for line in data["schools"].splitlines() if line.strip()]
            district = do_add_district(
                data["state"],
                data["code"],
                data["name"],
                int(year),
                data["state_name"] or None,
                data["edition"] or None,
                schools,
            )
        except ResyncError as e:
            field = FIELDS.get(e.field, e.field)
            form.add_error(field if field in form.fields else None, str(e))
        else:
            count = len(schools)
            model_admin.log_addition(request, district, [{"added": {}}])
            messages.success(
                request,
                f"District {district.code} {district.name} of {district.state.code}, scoped to "
                f"{district.scope_year}, with {count} school{'s' if count != 1 else ''}.",
            )
            return redirect("admin:resync_district_changelist")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Add district",
        "opts": District._meta,
        "form": form,
    }
    return TemplateResponse(request, "admin/resync/add_district.html", context)
