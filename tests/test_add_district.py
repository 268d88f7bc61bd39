"""add_district: a district, its state and schools, from one command."""

import io

import pytest
from django.core.management import CommandError, call_command

from resync.models import District, School, State

pytestmark = pytest.mark.django_db


def add_district(*args):
    out = io.StringIO()
    call_command("add_district", *args, stdout=out)
    return out.getvalue()


BASE = ["--state", "KY", "--code", "205", "--name", "Franklin County", "--year", "2027"]


def test_it_creates_the_state_the_district_and_its_schools():
    out = add_district(
        *BASE, "--state-name", "Kentucky", "--school", "001:Franklin High", "--school", "002: Elkhorn"
    )
    d = District.objects.select_related("state").get(code="205")
    assert (d.name, d.scope_year, d.state.name, d.state.edition) == (
        "Franklin County",
        2027,
        "Kentucky",
        "KY",
    )
    assert sorted(School.objects.filter(district=d).values_list("number", "name")) == [
        ("001", "Franklin High"),
        ("002", "Elkhorn"),
    ]
    assert "District 205 Franklin County of KY, scoped to 2027, with 2 schools." in out


def test_it_uses_an_existing_state_and_its_edition():
    State.objects.create(code="KY", name="Kentucky", edition="")
    add_district(*BASE, "--edition", "XX")
    assert State.objects.get().edition == ""  # an existing state is left as it is
    assert District.objects.get().state.code == "KY"


def test_it_refuses_a_district_code_taken_and_changes_nothing():
    add_district(*BASE, "--school", "001:Franklin High")
    with pytest.raises(CommandError, match="District 205 exists already: nothing was changed."):
        add_district(
            "--state", "OH", "--code", "205", "--name", "Other", "--year", "2027", "--school", "009:X"
        )
    assert District.objects.get().name == "Franklin County"
    assert not State.objects.filter(code="OH").exists() and School.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--year", "27"], "School year 27 is not a year"),
        (["--school", "Franklin High"], "A school is NUMBER:NAME"),
        (["--school", "001:A", "--school", "001:B"], "A school number is given twice: 001."),
        (["--code", ""], "A district code has 1 to 16 characters"),
    ],
)
def test_it_refuses_bad_input_naming_it(args, message):
    with pytest.raises(CommandError, match=message):
        add_district(*BASE, *args)
    assert not District.objects.exists() and not State.objects.exists()
