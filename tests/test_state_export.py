"""The admin's export of the state's copy (state users only, streamed), and CSV cells a
spreadsheet never runs as formulas, in every CSV StateSync writes."""

import csv
import io
import json

import pytest
from django.http import StreamingHttpResponse

from core import spreadsheet
from history.models import ErrorLog
from resync.models import SyncField, SyncObject
from statecopy import export

from .test_api_resync import auth
from .test_history_admin import history
from .test_state_records import state

pytestmark = pytest.mark.django_db(databases=["default", "state"])

PAGE = "/admin/resync/staterecord/"


@pytest.fixture
def copy(cast):
    """PersonIdentity with a text and an integer field, at the state for two districts."""
    person = SyncObject.objects.get(name="PersonIdentity")
    SyncField.objects.filter(sync_object=person).delete()
    SyncField.objects.create(sync_object=person, name="last", type=SyncField.Type.STRING)
    SyncField.objects.create(sync_object=person, name="credits", type=SyncField.Type.INTEGER)
    state("101", "PersonIdentity", 1, {"last": '=HYPERLINK("http://x")', "credits": -5}, year=None)
    state("101", "PersonIdentity", 2, {"last": "-Lee", "credits": 3}, year=None)
    state("202", "PersonIdentity", 9, {"last": "Boone", "credits": 0}, year=None)
    return cast


def lines(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_it_streams_one_district_or_all_to_a_state_user(client, copy):
    client.force_login(copy.stella)
    form = client.get(PAGE)
    assert form.status_code == 200 and b'<option value="PersonIdentity">' in form.content
    one = client.get(PAGE, {"object": "PersonIdentity", "district": "101", "format": "csv"})
    assert one["Content-Disposition"] == 'attachment; filename="state-personidentity-101.csv"'
    rows = lines(one)
    assert rows[0] == [
        "district",
        "record_id",
        "school_year",
        "parent:ScheduleStructure",
        "credits",  # the schema's fields in its order
        "last",
        "extra",
    ]
    assert [r[:2] for r in rows[1:]] == [["101", "1"], ["101", "2"]]
    every = lines(client.get(PAGE, {"object": "PersonIdentity", "format": "csv"}))
    assert [r[:2] for r in every[1:]] == [["101", "1"], ["101", "2"], ["202", "9"]]
    nd = client.get(PAGE, {"object": "PersonIdentity", "district": "202", "format": "ndjson"})
    assert nd["Content-Type"] == "application/x-ndjson"
    got = [json.loads(line) for line in b"".join(nd.streaming_content).splitlines()]
    assert [(r["district"], r["record_id"], r["payload"]) for r in got] == [
        ("202", 9, {"last": "Boone", "credits": 0})
    ]


def test_it_names_what_the_export_form_refuses(client, copy):
    client.force_login(copy.stella)
    response = client.get(PAGE, {"object": "Nothing", "district": "999", "format": "xls"})
    assert response.status_code == 200 and response.content.count(b"Select a valid choice") == 3


def test_it_hides_the_export_from_everyone_but_state_users(client, copy):
    for user in (copy.alice, copy.bob, copy.charlie):
        client.force_login(user)
        assert client.get(PAGE).status_code == 404
        assert client.get(PAGE, {"object": "PersonIdentity"}).status_code == 404
        assert b"staterecord" not in client.get("/admin/").content
    client.logout()
    response = client.get(PAGE, {"object": "PersonIdentity"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(copy.stella)
    assert client.get(PAGE + "1/change/").status_code == 404  # no page reads a record by hand


def test_it_exports_in_few_queries(client, copy, django_assert_max_num_queries):
    client.force_login(copy.stella)
    with django_assert_max_num_queries(12):
        assert client.get(PAGE).status_code == 200
    with django_assert_max_num_queries(12):
        lines(client.get(PAGE, {"object": "PersonIdentity", "format": "csv"}))


def test_it_writes_text_that_looks_like_a_formula_as_text_and_numbers_as_numbers(client, copy):
    rows = lines(
        client.get(
            "/api/v1/state-records/export/?object=PersonIdentity&district=101", headers=auth(copy.stella)
        )
    )
    by_id = {r[1]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert by_id["1"]["last"] == '\'=HYPERLINK("http://x")' and by_id["1"]["credits"] == "-5"
    assert by_id["2"]["last"] == "'-Lee" and by_id["2"]["credits"] == "3"
    client.force_login(copy.stella)
    admin = lines(client.get(PAGE, {"object": "PersonIdentity", "district": "101", "format": "csv"}))
    assert admin == rows  # one writer for both doors


@pytest.mark.parametrize(
    "value, written",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Lee", "Lee"),
        ("", ""),
        (-5, -5),
        (2.5, 2.5),
    ],
)
def test_it_quotes_only_text_a_spreadsheet_would_run(value, written):
    assert spreadsheet.cell(value) == written
    if isinstance(value, str):
        assert export._cell(value) == written
    else:
        assert export._cell(value) == str(value)


def test_it_writes_the_error_log_csv_safe_for_a_spreadsheet(district):
    history(district, 1)
    ErrorLog.objects.update(message="=cmd|' /C calc'!A0")
    rows = list(csv.reader(io.StringIO("".join(ErrorLog.objects.order_by("id").as_csv()))))
    assert rows[1][5] == "'=cmd|' /C calc'!A0" and rows[1][3] == "0"  # record_id stays a number
