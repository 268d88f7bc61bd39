"""Reading the state's copy: the state-records API, its CSV and NDJSON export, and the
state_views reporting views, on real StateRecord rows in the state database."""

import base64
import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from resync.models import StateRecord, SyncField, SyncObject
from statecopy import sqlviews

from .conftest import BOTH, COMMITTED, run_queue
from .test_api_resync import auth
from .test_faults import district_less_refused, full_resync

pytestmark = pytest.mark.django_db(databases=BOTH)

URL = "/api/v1/state-records/"
EARLY = dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)


def state(district, obj, rid, payload=None, parents=None, year=2027, at=EARLY, step=7) -> StateRecord:
    return StateRecord.objects.create(
        district_code=district,
        sync_object=obj,
        record_id=rid,
        school_year=year,
        parent_ids=parents or {},
        payload=payload or {},
        step=step,
        synced_at=at,
    )


@pytest.fixture
def copy(cast):
    """Enrollments of two districts and one PersonIdentity, one of them synced later."""
    state("101", "Enrollment", 1, {"grade": "09", "start_date": "2026-08-12"}, {"PersonIdentity": 1})
    state(
        "101",
        "Enrollment",
        2,
        {"grade": "10", "service_type": "P", "note": "x"},
        {"PersonIdentity": 2},
        at=LATE,
    )
    state("202", "Enrollment", 1, {"grade": "11"}, {"PersonIdentity": 5}, year=2026)
    state("101", "PersonIdentity", 1, {"first": "Ann", "last": "Lee"}, year=None)
    return cast


@COMMITTED
def test_it_gives_a_state_user_exactly_what_a_resync_sent(client, demo_district, queue):
    from django.contrib.auth.models import Group, User

    from resync import groups

    district, _expected = demo_district
    request = full_resync(district)
    run_queue()
    reader = User.objects.create_user("reader", "r@example.org", "pw")
    reader.groups.add(Group.objects.get(name=groups.STATE_ADMINS))
    got, url = [], f"{URL}?district={district.code}&page_size=250"
    while url:
        body = client.get(url, headers=auth(reader)).json()
        got += body["results"]
        url = body["next"]
    read = {
        (r["object"], r["record_id"], r["school_year"], json.dumps(r["payload"], sort_keys=True)) for r in got
    }
    assert len(got) == len(read) > 250  # several pages, no record twice
    assert read == district_less_refused(district, request)
    steps = set(request.steps.values_list("pk", flat=True))
    assert {r["step"] for r in got} <= steps


def test_it_keeps_an_index_for_changed_since_on_the_state_side():
    with connections["state"].cursor() as cursor:
        found = connections["state"].introspection.get_constraints(cursor, StateRecord._meta.db_table)
    assert found["state_record_synced"]["columns"] == ["synced_at"]
    with connections["default"].cursor() as cursor:
        assert StateRecord._meta.db_table not in connections["default"].introspection.table_names(cursor)


def listed(client, user, **params) -> list[tuple]:
    body = client.get(URL, params, headers=auth(user)).json()
    return [(r["district"], r["object"], r["record_id"]) for r in body["results"]]


def test_it_lists_every_district_to_a_state_user(client, copy):
    body = client.get(URL, headers=auth(copy.stella)).json()
    assert set(body) == {"next", "previous", "results"}
    first = body["results"][0]
    assert first == {
        "district": "101",
        "object": "Enrollment",
        "record_id": 1,
        "school_year": 2027,
        "parents": {"PersonIdentity": 1},
        "payload": {"grade": "09", "start_date": "2026-08-12"},
        "step": 7,
        "synced_at": first["synced_at"],
    }
    assert dt.datetime.fromisoformat(first["synced_at"]) == EARLY
    assert len(body["results"]) == 4


def test_it_narrows_by_district_object_and_year(client, copy):
    assert listed(client, copy.stella, district="202") == [("202", "Enrollment", 1)]
    assert listed(client, copy.stella, object="PersonIdentity") == [("101", "PersonIdentity", 1)]
    assert listed(client, copy.stella, object="Enrollment", school_year=2027) == [
        ("101", "Enrollment", 1),
        ("101", "Enrollment", 2),
    ]


def test_it_gives_only_what_changed_since(client, copy):
    since = (EARLY + dt.timedelta(days=1)).isoformat()
    assert listed(client, copy.stella, changed_since=since) == [("101", "Enrollment", 2)]
    # Strictly after: a pull from the exact moment of a record does not repeat it.
    assert listed(client, copy.stella, changed_since=LATE.isoformat()) == []


def test_it_refuses_a_bad_changed_since_naming_it(client, copy):
    answer = client.get(URL, {"changed_since": "yesterday"}, headers=auth(copy.stella))
    assert answer.status_code == 400 and list(answer.json()) == ["changed_since"]


def test_it_refuses_a_bad_cursor_or_page_size_naming_it(client, copy):
    assert list(client.get(URL, {"cursor": "zz"}, headers=auth(copy.stella)).json()) == ["cursor"]
    forged = base64.b64encode(b"p=abc").decode()  # well formed, but its position no id
    assert list(client.get(URL, {"cursor": forged}, headers=auth(copy.stella)).json()) == ["cursor"]
    assert list(client.get(URL, {"page_size": "0"}, headers=auth(copy.stella)).json()) == ["page_size"]


def test_it_walks_every_record_once_by_cursor_even_as_rows_change(client, cast):
    for rid in range(1, 12):
        state("101", "Enrollment", rid, {"grade": "09"})
    seen, url = [], f"{URL}?page_size=3"
    while url:
        body = client.get(url, headers=auth(cast.stella)).json()
        seen += [r["record_id"] for r in body["results"]]
        if len(seen) == 3:
            # A row already read is rewritten mid-walk: it does not come round again.
            StateRecord.objects.filter(record_id=1).update(synced_at=LATE, payload={"grade": "10"})
        url = body["next"]
    assert seen == list(range(1, 12))


@pytest.mark.parametrize("who", ["alice", "charlie"])
def test_it_refuses_district_users_as_a_state_only_door(client, copy, who):
    for url in (URL, f"{URL}export/?object=Enrollment"):
        answer = client.get(url, headers=auth(getattr(copy, who)))
        assert answer.status_code == 403
        assert "state" in answer.json()["detail"]


def test_it_refuses_an_outsider(client, copy):
    assert client.get(URL).status_code == 401
    assert client.get(f"{URL}export/?object=Enrollment").status_code == 401


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_it_exports_one_object_as_csv_with_the_schema_columns(client, copy):
    response = client.get(f"{URL}export/", {"object": "enrollment"}, headers=auth(copy.stella))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert 'filename="state-enrollment.csv"' in response["Content-Disposition"]
    header, *rows = read_csv(response)
    assert header == [
        "district",
        "record_id",
        "school_year",
        "parent:PersonIdentity",
        "grade",
        "start_date",
        "end_date",
        "service_type",
        "extra",
    ]
    assert rows == [
        ["101", "1", "2027", "1", "09", "2026-08-12", "", "", ""],
        ["101", "2", "2027", "2", "10", "", "", "P", '{"note": "x"}'],
        ["202", "1", "2026", "5", "11", "", "", "", ""],
    ]
    one = client.get(f"{URL}export/", {"object": "Enrollment", "district": "202"}, headers=auth(copy.stella))
    assert [r[:2] for r in read_csv(one)[1:]] == [["202", "1"]]


def test_it_exports_ndjson_one_record_a_line(client, copy):
    response = client.get(
        f"{URL}export/",
        {"object": "Enrollment", "district": "101", "format": "ndjson"},
        headers=auth(copy.stella),
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["district"], r["record_id"], r["payload"]) for r in lines] == [
        ("101", 1, {"grade": "09", "start_date": "2026-08-12"}),
        ("101", 2, {"grade": "10", "service_type": "P", "note": "x"}),
    ]
    assert dt.datetime.fromisoformat(lines[0]["synced_at"]) == EARLY and lines[0]["parents"] == {
        "PersonIdentity": 1
    }


@COMMITTED
async def test_it_streams_the_export_under_asgi_without_reading_it_whole(async_client, cast):
    from asgiref.sync import sync_to_async

    @sync_to_async
    def setup() -> dict:
        for rid in range(1, 1202):
            state("101", "Enrollment", rid, {"grade": "09"})
        return auth(cast.stella)

    headers = await setup()
    try:
        response = await async_client.get(f"{URL}export/", {"object": "Enrollment"}, headers=headers)
        assert response.status_code == 200 and response.is_async
        chunks = [chunk async for chunk in response.streaming_content]
    finally:
        # The request's thread holds its own connections (a server closes them at the
        # request's end): closed here, so the test databases can be dropped.
        await sync_to_async(connections.close_all)()
    # Batches of 500 lines, the header line first: not one list of every line.
    assert len(chunks) == 3
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 1202 and lines[1].startswith("101,1,2027,")


def test_it_refuses_a_format_it_does_not_write_naming_it(client, copy):
    for url in (f"{URL}export/?object=Enrollment&format=xml", f"{URL}export/?object=Enrollment&format=json"):
        answer = client.get(url, headers=auth(copy.stella))
        assert answer.status_code == 400 and list(answer.json()) == ["format"]


def test_it_refuses_an_export_without_a_known_object(client, copy):
    missing = client.get(f"{URL}export/", headers=auth(copy.stella))
    assert missing.status_code == 400 and list(missing.json()) == ["object"]
    unknown = client.get(f"{URL}export/", {"object": "Nope"}, headers=auth(copy.stella))
    assert unknown.status_code == 400 and "Nope" in unknown.json()["object"][0]


# ---- state_views ---------------------------------------------------------------------------


@pytest.fixture
def typed(catalog):
    """TestScore's schema (date, number) with a field of every other type added."""
    obj = SyncObject.objects.get(name="TestScore")
    for i, (name, type_) in enumerate(
        [("tries", "integer"), ("passed", "boolean"), ("taken_at", "datetime"), ("form", "code")], start=10
    ):
        SyncField.objects.create(
            sync_object=obj, name=name, type=type_, position=i, codes=["A"] if type_ == "code" else []
        )
    state(
        "101",
        "TestScore",
        3,
        {
            "date": "2027-04-02",
            "score": 512.5,
            "tries": 2,
            "passed": True,
            "taken_at": "2027-04-02T09:30:00+00:00",
            "form": "A",
        },
        {"PersonIdentity": 1, "Test": 4},
    )
    state("101", "Enrollment", 1, {"grade": "09"})
    return obj


def view_rows(name: str) -> tuple[list[str], list[tuple]]:
    with connections["state"].cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connections['state'].ops.quote_name(name)}")
        return [c[0] for c in cursor.description], cursor.fetchall()


def test_it_creates_a_typed_view_per_object(typed, capsys):
    call_command("state_views", "--object", "testscore", "--object", "Enrollment")
    printed = capsys.readouterr().out
    assert "state_testscore: district, record_id, school_year, parents, date, score, tries" in printed
    columns, rows = view_rows("state_testscore")
    assert columns == [
        "district",
        "record_id",
        "school_year",
        "parents",
        "date",
        "score",
        "tries",
        "passed",
        "taken_at",
        "form",
        "synced_at",
    ]
    (row,) = rows
    district, rid, year, parents, date, score, tries, passed, taken_at, form, synced_at = row
    assert (district, rid, year, tries, form) == ("101", 3, 2027, 2, "A")
    assert (json.loads(parents) if isinstance(parents, str) else parents) == {"PersonIdentity": 1, "Test": 4}
    if connections["state"].vendor == "postgresql":
        assert (date, score, passed) == (dt.date(2027, 4, 2), Decimal("512.5"), True)
        assert taken_at == dt.datetime(2027, 4, 2, 9, 30, tzinfo=dt.UTC)
    else:
        assert (date, score, passed, taken_at) == ("2027-04-02", 512.5, 1, "2027-04-02T09:30:00+00:00")
    assert [r[:3] for r in view_rows("state_enrollment")[1]] == [("101", 1, 2027)]


def test_it_replaces_a_view_after_a_schema_change(typed, capsys):
    call_command("state_views", "--object", "TestScore")
    # A field removed and one retyped: PostgreSQL's CREATE OR REPLACE alone refuses both.
    typed.fields.get(name="passed").delete()
    tries = typed.fields.get(name="tries")
    tries.type = "number"
    tries.save()
    call_command("state_views", "--object", "TestScore")
    columns, rows = view_rows("state_testscore")
    assert "passed" not in columns and columns[-1] == "synced_at"
    assert float(rows[0][columns.index("tries")]) == 2.0


def test_it_shows_the_whole_payload_of_an_object_open_to_extra_fields(typed, capsys):
    typed.do_set_allows_extra(True)
    call_command("state_views", "--object", "TestScore")
    columns, rows = view_rows("state_testscore")
    assert columns[-2:] == ["payload", "synced_at"] and "score" in columns
    payload = rows[0][-2]
    assert (json.loads(payload) if isinstance(payload, str) else payload)["form"] == "A"


def test_it_creates_every_enabled_objects_view_by_default(typed, capsys):
    call_command("state_views")
    printed = capsys.readouterr().out.splitlines()
    enabled = SyncObject.objects.enabled().count()
    assert len(printed) == enabled and printed[0].startswith("state_")


def test_it_refuses_an_unknown_object_by_name(typed):
    with pytest.raises(CommandError, match="Nope"):
        call_command("state_views", "--object", "Nope")


def test_it_refuses_a_field_named_like_a_fixed_column():
    with pytest.raises(ValueError, match="record_id"):
        sqlviews.view_statements("sqlite", str, "t", "X", [sqlviews.Column("record_id", "integer")])


def test_it_quotes_names_and_literals_in_the_view_sql():
    (create,) = sqlviews.view_statements(
        "postgresql", lambda n: f'"{n}"', "t", "O'Brien", [sqlviews.Column("it's", "integer")]
    )
    assert "(payload->>'it''s')::bigint AS \"it's\"" in create
    assert "WHERE sync_object = 'O''Brien'" in create and create.startswith(
        'CREATE OR REPLACE VIEW "state_o\'brien"'
    )
