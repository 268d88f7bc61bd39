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


# ---- The same from the admin: Resync › Districts › Add district ----------------------

ADD_URL = "/admin/resync/district/add/"
FORM = {"state": "KY", "code": "205", "name": "Franklin County", "year": "2027", "schools": ""}


def test_it_adds_a_district_with_its_schools_from_the_admin(cast, client, django_assert_max_num_queries):
    client.force_login(cast.stella)
    with django_assert_max_num_queries(7):
        page = client.get(ADD_URL)
    assert page.status_code == 200 and b'name="schools"' in page.content
    r = client.post(
        ADD_URL,
        {**FORM, "schools": "001:Franklin High\r\n\r\n002: Elkhorn\r\n"},
        follow=True,
    )
    assert r.redirect_chain == [("/admin/resync/district/", 302)]
    assert b"District 205 Franklin County of KY, scoped to 2027, with 2 schools." in r.content
    d = District.objects.select_related("state").get(code="205")
    assert (d.name, d.scope_year, d.state.code) == ("Franklin County", 2027, "KY")
    assert sorted(School.objects.filter(district=d).values_list("number", "name")) == [
        ("001", "Franklin High"),
        ("002", "Elkhorn"),
    ]


def test_it_creates_a_new_state_from_the_admin(cast, client):
    client.force_login(cast.stella)
    client.post(ADD_URL, {**FORM, "state": "OH", "state_name": "Ohio", "edition": "OH"})
    assert State.objects.filter(code="OH", name="Ohio", edition="OH").exists()
    assert District.objects.get(code="205").state.code == "OH"


@pytest.mark.parametrize(
    ("form", "field", "message", "args"),
    [
        ({"year": "27"}, "year", "School year 27 is not a year", ["--year", "27"]),
        ({"year": "２０２７"}, "year", "is not a year: give its ending year", None),
        ({"schools": "Franklin High"}, "schools", "A school is NUMBER:NAME", ["--school", "Franklin High"]),
        (
            {"schools": "001:A\n001:B"},
            "schools",
            "A school number is given twice: 001.",
            ["--school", "001:A", "--school", "001:B"],
        ),
        ({"code": ""}, "code", "A district code has 1 to 16 characters", ["--code", ""]),
        ({"code": "101"}, "code", "District 101 exists already: nothing was changed.", ["--code", "101"]),
        ({"code": "2/5"}, "code", "A district code is ASCII letters, digits", ["--code", "2/5"]),
        ({"code": "3 0 5"}, "code", "A district code is ASCII letters, digits", ["--code", "3 0 5"]),
        ({"code": "٢٠٥"}, "code", "A district code is ASCII letters, digits", ["--code", "٢٠٥"]),
        ({"state": "K Y"}, "state", "A state code is ASCII letters, digits", ["--state", "K Y"]),
    ],
)
def test_it_refuses_in_the_admin_what_the_command_refuses(cast, client, form, field, message, args):
    client.force_login(cast.stella)
    before = (District.objects.count(), State.objects.count(), School.objects.count())
    r = client.post(ADD_URL, {**FORM, **form})
    assert r.status_code == 200
    assert any(message in e for e in r.context["form"].errors[field])
    assert (District.objects.count(), State.objects.count(), School.objects.count()) == before
    if args is not None:  # the command refuses it for the same reason (argparse itself a fullwidth year)
        with pytest.raises(CommandError, match=message):
            add_district(*BASE, *args)
        assert (District.objects.count(), State.objects.count(), School.objects.count()) == before


def test_it_shows_district_users_no_add_page_and_adds_nothing(cast, client):
    for user in (cast.alice, cast.bob, cast.charlie):
        client.force_login(user)
        assert client.get(ADD_URL).status_code == 403
        assert client.post(ADD_URL, FORM).status_code == 403
        assert b"Add district" not in client.get("/admin/resync/district/").content
    assert not District.objects.filter(code="205").exists()
    client.logout()
    assert client.post(ADD_URL, FORM).status_code == 302  # to the login page
    assert not District.objects.filter(code="205").exists()
