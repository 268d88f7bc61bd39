"""The load API (loads.api) on real rows through the real URLs: batches, snapshots,
deletes by id, every refusal as one RFC 9457 problem, and the loads listing."""

import json
import re

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.authtoken.models import Token

from loads.models import Load
from resync import groups
from resync.models import District, DistrictRecord, SyncField, SyncObject

from .conftest import BOTH, add
from .test_import_records import load, schema, schools, write  # noqa: F401 (schema: a fixture)

pytestmark = pytest.mark.django_db(databases=BOTH)

URL = "/api/v1/district-records/{}/{}/"
SCHOOLS = [
    {
        "record_id": 1,
        "parents": {"District": 1},
        "name": "Adair High",
        "opened": "2001-08-15",
        "state_number": "KY-1",
    },
    {"record_id": 2, "parents": {"District": 1}, "name": "Adair Middle", "state_number": "KY-2"},
    {"record_id": 3, "parents": {"District": 1}, "name": "Adair Elementary, North", "opened": "1999-08-20"},
    {
        "record_id": 4,
        "parents": {"District": 1},
        "name": "Adair Primary",
        "opened": "2010-08-10",
        "state_number": "KY-4",
    },
]


def grant_loads(cast) -> None:
    """District data W: the State Administrators as loads 0002 gives it (cast takes it
    away), alice and charlie one by one; bob holds the district right only."""
    groups.grant(Group, Permission, {groups.STATE_ADMINS: groups.LOAD_STATE_PERMS})
    perm = Permission.objects.get(codename="load_district_data")
    for user in (cast.alice, cast.charlie):
        user.user_permissions.add(perm)


@pytest.fixture
def loaders(cast, schema):  # noqa: F811 (the fixture imported above)
    grant_loads(cast)
    return cast


def auth(user) -> dict:
    return {"authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def send(client, user, body, method="post", obj="School", code="101", query="", content_type=None):
    """A call of the load API: `body` a list (JSON), a str or bytes sent as is."""
    if isinstance(body, (list, dict)):
        body, content_type = json.dumps(body), content_type or "application/json"
    url = URL.format(code, obj) + (f"?{query}" if query else "")
    return getattr(client, method)(
        url, body, content_type=content_type or "application/x-ndjson", headers=auth(user)
    )


def ndjson(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def problem(response, status=400) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].startswith("urn:statesync:problem:")
    assert body["title"] and body["detail"]
    return body


def pairs(body) -> list[tuple]:
    return [(e["index"], e["record_id"], e["field"], e["message"]) for e in body["errors"]]


# ---- Upserting a batch --------------------------------------------------------------------


def test_it_upserts_a_json_batch_and_answers_its_counts_and_load(client, loaders):
    r = send(client, loaders.alice, SCHOOLS)
    assert r.status_code == 200, r.content
    body = r.json()
    load = Load.objects.get()
    assert body == {
        "load": load.pk,
        "read": 4,
        "inserted": 4,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "rejected": 0,
        "errors": [],
        "error_count": 0,
        "note": "",
    }
    assert (load.loaded_by, load.inserted, load.snapshot) == (loaders.alice, 4, False)
    assert schools(loaders.district)[3].payload == {"name": "Adair Elementary, North", "opened": "1999-08-20"}

    again = send(client, loaders.alice, ndjson([{**SCHOOLS[0], "name": "Adair Senior High"}, SCHOOLS[1]]))
    assert (again.json()["updated"], again.json()["unchanged"], again.json()["inserted"]) == (1, 1, 0)
    assert schools(loaders.district)[1].payload["name"] == "Adair Senior High"


def test_it_loads_a_year_tied_object_in_the_year_asked(client, loaders):
    add(loaders.district, "PersonIdentity", 7, {"ScheduleStructure": 1})
    rows = [{"record_id": 1, "parents": {"PersonIdentity": 7}, "start_date": "2026-08-12", "grade": "09"}]
    r = send(client, loaders.stella, rows, obj="Enrollment", query="year=2028")
    assert r.status_code == 200, r.content
    assert DistrictRecord.objects.get(sync_object__name="Enrollment").school_year == 2028
    assert Load.objects.get().school_year == 2028


# Each refusal through the API: (what, object, body, query, expected (index, record_id, field), message part)
E = {"parents": {"PersonIdentity": 7}, "start_date": "2026-08-12"}
REFUSALS = [
    ("bad type", "School", [SCHOOLS[0], {**SCHOOLS[1], "opened": 17}], "", (1, 2, "opened"), "not"),
    (
        "missing required",
        "School",
        [{"record_id": 5, "parents": {"District": 1}}],
        "",
        (0, 5, "name"),
        "required",
    ),
    ("unknown field", "School", [{**SCHOOLS[0], "colour": "red"}], "", (0, 1, "colour"), "unknown field"),
    (
        "bad parent key",
        "School",
        [{**SCHOOLS[0], "parents": {"Calendar": 1}}],
        "",
        (0, 1, "parents.Calendar"),
        "not a parent of School",
    ),
    (
        "year on a non-year object",
        "School",
        [{**SCHOOLS[0], "school_year": 2027}],
        "",
        (0, 1, "school_year"),
        "not tied",
    ),
    ("duplicate id", "School", [SCHOOLS[0], SCHOOLS[0]], "", (1, 1, "record_id"), "appears earlier"),
    ("not an object", "School", [SCHOOLS[0], [1, 2]], "", (1, None, ""), "not list"),
    (
        "another year's record",
        "Enrollment",
        [{**E, "record_id": 1, "school_year": 2028}],
        "year=2027",
        (0, 1, "school_year"),
        "2028",
    ),
]


@pytest.mark.parametrize("what, obj, rows, query, where, words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_it_refuses_a_bad_record_and_writes_nothing(client, loaders, what, obj, rows, query, where, words):
    add(loaders.district, "PersonIdentity", 7, {"ScheduleStructure": 1})
    before = DistrictRecord.objects.count()
    body = problem(send(client, loaders.alice, rows, obj=obj, query=query))
    assert body["type"].endswith("invalid-records") and body["error_count"] == len(body["errors"])
    index, rid, field, message = pairs(body)[0]
    assert (index, rid, field) == where and words in message
    assert DistrictRecord.objects.count() == before and not Load.objects.exists()


def test_it_refuses_a_change_to_a_state_locked_field(client, loaders):
    send(client, loaders.alice, SCHOOLS)
    changed = [{**SCHOOLS[0], "name": "Adair Senior High"}, {**SCHOOLS[1], "state_number": "KY-22"}]
    body = problem(send(client, loaders.alice, changed))
    assert [(i, rid, f) for i, rid, f, _ in pairs(body)] == [(1, 2, "state_number")]
    assert "state-locked" in body["errors"][0]["message"]
    assert schools(loaders.district)[1].payload["name"] == "Adair High"  # atomic: the good change waits


def test_it_lists_every_bad_record_in_one_problem(client, loaders):
    rows = [{**SCHOOLS[0], "record_id": i, "opened": "no"} for i in range(1, 151)]
    body = problem(send(client, loaders.alice, rows))
    assert body["error_count"] == 150 and len(body["errors"]) == 100  # loads.actions.SHOWN
    assert [e["index"] for e in body["errors"]][:3] == [0, 1, 2] and "150" in body["detail"]


def test_it_skips_the_invalid_records_when_asked(client, loaders):
    rows = [SCHOOLS[0], {**SCHOOLS[1], "name": "x" * 41}, SCHOOLS[2]]
    r = send(client, loaders.alice, rows, query="skip_invalid=true")
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["inserted"], body["rejected"], body["error_count"]) == (2, 1, 1)
    assert pairs(body) == [(1, 2, "name", "longer than 40 characters (41)")]
    assert sorted(schools(loaders.district)) == [1, 3] and Load.objects.get().rejected == 1


@pytest.mark.parametrize(
    "what, body, content_type, status, words",
    [
        ("not JSON", '[{"record_id": 1,', "application/json", 400, "not JSON"),
        ("a JSON object, not an array", '{"record_id": 1}', "application/json", 400, "JSON array"),
        ("empty body", "", "application/json", 400, "empty"),
        ("empty NDJSON body", "\n\n", "application/x-ndjson", 400, "empty"),
        ("duplicate key", '{"record_ids": 1, "record_ids": 2}', "application/json", 400, "'record_ids'"),
        ("not UTF-8", b'[{"record_id": 1, "name": "\xff"}]', "application/json", 400, "UTF-8"),
        ("NaN", '[{"record_id": NaN}]', "application/json", 400, "NaN"),
        ("wrong content type", "record_id,name\n1,A\n", "text/csv", 415, "application/json"),
        ("a form", "record_id=1", "application/x-www-form-urlencoded", 415, "not application/x-www-form"),
    ],
)
def test_it_refuses_a_body_it_cannot_read(client, loaders, what, body, content_type, status, words):
    got = problem(send(client, loaders.alice, body, content_type=content_type), status)
    assert words in got["detail"] and not DistrictRecord.objects.filter(sync_object__name="School").exists()


def test_it_names_each_record_giving_a_key_twice_in_an_array(client, loaders):
    text = json.dumps(SCHOOLS[:2])[:-1] + ', {"record_id": 3, "parents": {"District": 1, "District": 2}}]'
    body = problem(send(client, loaders.alice, text, content_type="application/json"))
    assert pairs(body) == [
        (2, None, "", "the key 'District' appears twice in one object: send each key once.")
    ]
    assert not DistrictRecord.objects.filter(sync_object__name="School").exists()
    # With skip_invalid that record alone is refused, as its NDJSON line would be.
    r = send(client, loaders.alice, text, content_type="application/json", query="skip_invalid=true")
    assert r.status_code == 200, r.content
    assert pairs(r.json()) == [
        (2, None, "", "the key 'District' appears twice in one object: send each key once.")
    ]
    assert sorted(schools(loaders.district)) == [1, 2]


def test_it_reads_an_ndjson_snapshot_as_a_stream_never_whole(client, loaders, monkeypatch):
    from django.http import HttpRequest

    def whole(self, *args):
        raise AssertionError("the body was read whole")

    monkeypatch.setattr(HttpRequest, "read", whole)  # line by line (readline) only
    monkeypatch.setattr(HttpRequest, "body", property(whole))
    r = send(client, loaders.alice, ndjson(SCHOOLS), method="put")
    assert r.status_code == 200, r.content
    assert r.json()["inserted"] == 4


def test_it_names_a_duplicate_key_on_its_ndjson_line(client, loaders):
    text = ndjson([SCHOOLS[0]]) + '{"record_id": 2, "parents": {"District": 1}, "name": "A", "name": "B"}\n'
    body = problem(send(client, loaders.alice, text))
    assert pairs(body) == [(1, None, "", "the key 'name' appears twice in one object: send each key once.")]


def test_it_refuses_more_records_than_a_call_takes(client, loaders, monkeypatch):
    rows = [{**SCHOOLS[0], "record_id": i} for i in range(1, 10_002)]
    body = problem(send(client, loaders.alice, rows), 413)
    assert "10,000" in body["detail"]
    # NDJSON is read as a stream: the load stops at the 10,001st record and undoes the rest.
    monkeypatch.setattr("loads.actions.BATCH", 1000)
    body = problem(send(client, loaders.alice, ndjson(rows)), 413)
    assert (
        "10,000" in body["detail"] and not DistrictRecord.objects.filter(sync_object__name="School").exists()
    )
    assert not Load.objects.exists()


@pytest.mark.parametrize(
    "query, obj, field, words",
    [
        ("year=2027", "School", "year", "not tied to a school year"),
        ("year=2031", "Enrollment", "year", "not configured"),
        ("year=twenty", "School", "year", "ending year"),
        ("skip_invalid=maybe", "School", "skip_invalid", "true or false"),
        ("", "Nothing", "object", "No sync object named 'Nothing'"),
    ],
)
def test_it_refuses_a_call_check_load_refuses(client, loaders, query, obj, field, words):
    body = problem(send(client, loaders.alice, SCHOOLS, obj=obj, query=query))
    ((index, rid, got, message),) = pairs(body)
    assert (index, rid, got) == (None, None, field) and words in message


# ---- Snapshots and deletes --------------------------------------------------------------


def test_it_deletes_what_a_streamed_snapshot_leaves_out_and_stamps_it(client, loaders):
    send(client, loaders.alice, SCHOOLS)
    District.objects.filter(pk=loaders.district.pk).update(records_deleted_at=None)
    r = send(client, loaders.alice, ndjson(SCHOOLS[:2]), method="put")
    assert r.status_code == 200, r.content
    assert (r.json()["deleted"], r.json()["unchanged"]) == (2, 2)
    assert sorted(schools(loaders.district)) == [1, 2]
    assert District.objects.get(pk=loaders.district.pk).records_deleted_at is not None
    assert Load.objects.first().snapshot


def test_it_deletes_nothing_when_a_snapshot_refused_a_record(client, loaders):
    send(client, loaders.alice, SCHOOLS)
    body = problem(send(client, loaders.alice, [SCHOOLS[0], {**SCHOOLS[1], "opened": "no"}], method="put"))
    assert pairs(body)[0][:3] == (1, 2, "opened")
    r = send(
        client,
        loaders.alice,
        [SCHOOLS[0], {**SCHOOLS[1], "opened": "no"}],
        method="put",
        query="skip_invalid=1",
    )
    assert r.json()["deleted"] == 0 and "nothing deleted" in r.json()["note"]
    assert sorted(schools(loaders.district)) == [1, 2, 3, 4]


def delete(client, user, body, obj="School", code="101", query=""):
    url = URL.format(code, obj) + "delete/" + (f"?{query}" if query else "")
    return client.post(url, json.dumps(body), content_type="application/json", headers=auth(user))


def test_it_deletes_by_id_stamps_and_reports_unknown_ids(client, loaders):
    send(client, loaders.alice, SCHOOLS)
    District.objects.filter(pk=loaders.district.pk).update(records_deleted_at=None)
    r = delete(client, loaders.alice, {"record_ids": [2, 4, 99, 2]})
    assert r.status_code == 200, r.content
    load = Load.objects.first()
    assert r.json() == {"load": load.pk, "read": 3, "deleted": 2, "unknown": [99], "unknown_count": 1}
    assert (load.deleted, load.read, load.loaded_by) == (2, 3, loaders.alice)
    assert sorted(schools(loaders.district)) == [1, 3]
    assert District.objects.get(pk=loaders.district.pk).records_deleted_at is not None
    # Again: nothing left to delete, nothing refused.
    assert delete(client, loaders.alice, {"record_ids": [2, 4]}).json()["unknown"] == [2, 4]


def test_it_deletes_only_in_the_year_asked(client, loaders):
    add(loaders.district, "Enrollment", 5, {"PersonIdentity": 7}, {"start_date": "2025-08-12"}, year=2028)
    r = delete(client, loaders.alice, {"record_ids": [5]}, obj="Enrollment", query="year=2027")
    assert (r.json()["deleted"], r.json()["unknown"]) == (0, [5])
    assert DistrictRecord.objects.filter(sync_object__name="Enrollment").exists()


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"record_ids": []}, 400, "non-empty list"),
        ({"ids": [1]}, 400, "non-empty list"),
        ({"record_ids": [1, "2"]}, 400, 'not "2"'),
        ({"record_ids": [0]}, 400, "positive integer"),
        ({"record_ids": [True]}, 400, "positive integer"),
        ({"record_ids": list(range(1, 10_002))}, 413, "10,000"),
    ],
)
def test_it_refuses_ids_it_cannot_delete(client, loaders, body, status, words):
    send(client, loaders.alice, SCHOOLS)
    assert words in problem(delete(client, loaders.alice, body), status)["detail"]
    assert len(schools(loaders.district)) == 4


# ---- Rights -------------------------------------------------------------------------------


def test_it_hides_another_district_and_refuses_bob_the_right(client, loaders):
    assert send(client, loaders.charlie, SCHOOLS).status_code == 404  # not even its existence
    assert send(client, loaders.alice, SCHOOLS, code="999").status_code == 404
    r = send(client, loaders.bob, SCHOOLS)
    assert r.status_code == 403 and "district data W" in r.json()["detail"]
    assert delete(client, loaders.bob, {"record_ids": [1]}).status_code == 403
    assert client.post(URL.format("101", "School"), "[]", content_type="application/json").status_code == 401
    assert not DistrictRecord.objects.filter(sync_object__name="School").exists()


# ---- One validation home: the same bad rows refused alike by the file and the API --------


def test_it_refuses_the_same_rows_for_the_same_reasons_as_import_records(client, loaders, tmp_path):
    from django.core.management import CommandError

    rows = [
        SCHOOLS[0],
        {**SCHOOLS[1], "opened": "2010-13-45"},
        {"record_id": 5, "parents": {"District": 1}},
        {**SCHOOLS[2], "colour": "red"},
        {**SCHOOLS[3], "parents": {}},
        SCHOOLS[0],
        {"record_id": "six", "parents": {"District": 1}, "name": "A"},
    ]
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "bad.ndjson", ndjson(rows)), district="101", object="School")
    # "line N, record R, field F: message" against (index, record_id, field, message): the
    # same row (line N is index N-1), the same record, the same field, the same words.
    said = re.compile(r"line (\d+), record (\S+?)(?:, field (\S+))?: (.*)")
    from_file = {
        (int(m[1]), m[2], m[3] or "", m[4])
        for line in e.value.output.splitlines()
        if (m := said.fullmatch(line))
    }
    body = problem(send(client, loaders.alice, rows))
    from_api = {(i + 1, "?" if rid is None else str(rid), f, msg) for i, rid, f, msg in pairs(body)}
    assert from_api == from_file and len(from_api) >= 6


# ---- The loads listing, the catalog's schemas, import_records --user ----------------------


def test_it_lists_the_loads_of_the_districts_you_may_see(client, loaders, django_assert_num_queries):
    send(client, loaders.alice, SCHOOLS)
    other = SyncObject.objects.get(name="District")
    Load.objects.create(district=loaders.other, sync_object=other, read=1, inserted=1)
    mine = client.get("/api/v1/loads/", headers=auth(loaders.alice)).json()
    assert [(x["district"], x["object"], x["loaded_by"], x["inserted"]) for x in mine["results"]] == [
        ("101", "School", "alice", 4)
    ]
    for year in (2027, 2028):  # more rows, the same queries: none per row
        Load.objects.create(
            district=loaders.district, sync_object=other, school_year=year, loaded_by=loaders.bob
        )
    headers = auth(loaders.stella)
    with django_assert_num_queries(5):  # token, the two perm reads, count, page
        every = client.get("/api/v1/loads/", headers=headers).json()
    assert [x["district"] for x in every["results"]] == ["101", "101", "202", "101"]
    assert (
        client.get("/api/v1/loads/?district=202&object=District", headers=auth(loaders.stella)).json()[
            "count"
        ]
        == 1
    )
    their = Load.objects.get(district=loaders.other).pk
    assert client.get(f"/api/v1/loads/{their}/", headers=auth(loaders.alice)).status_code == 404
    assert client.get(f"/api/v1/loads/{their}/", headers=auth(loaders.charlie)).status_code == 200


def test_it_shows_each_objects_field_schema_in_the_catalog(client, loaders, django_assert_num_queries):
    school = SyncObject.objects.get(name="School")
    school.do_set_allows_extra(True)
    headers = auth(loaders.bob)
    # One query for every object's fields (prefetched), whatever the number of objects.
    # A first call warms the per-process caches (content types, the token's user), which
    # an earlier test may or may not have warmed: the count is then the same in any order.
    client.get("/api/v1/sync-objects/?page_size=1000", headers=headers)
    with django_assert_num_queries(11):
        body = client.get("/api/v1/sync-objects/?page_size=1000", headers=headers).json()
    got = {o["name"]: o for o in body["results"]}["School"]
    assert got["allows_extra"] is True
    assert got["schema"] == [
        {
            "name": f.name,
            "type": f.type,
            "required": f.required,
            "max_length": f.max_length,
            "codes": f.codes,
            "description": f.description,
            "owner": f.owner,
        }
        for f in SyncField.objects.filter(sync_object=school)
    ]
    assert {f["name"]: f["owner"] for f in got["schema"]}["state_number"] == "state"


# ---- Found in review: numbers JSON cannot store, nesting, a running step ---------------------


def test_it_refuses_a_number_too_large_to_store_at_every_door(client, loaders, tmp_path):
    from django.core.management import CommandError

    SyncField.objects.create(sync_object=SyncObject.objects.get(name="School"), name="gpa", type="number")
    text = '[{"record_id": 9, "parents": {"District": 1}, "name": "Big", "gpa": 1e400}]'
    body = problem(send(client, loaders.alice, text, content_type="application/json"))
    assert "too large to store" in body["errors"][0]["message"] and body["errors"][0]["index"] == 0
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "big.ndjson", text[1:-1] + "\n"), district="101", object="School")
    assert "line 1, record 9: a number (inf) is too large to store" in e.value.output
    with pytest.raises(CommandError) as e:  # a CSV's number typed by the schema, too
        load(
            write(tmp_path, "big.csv", "record_id,parent:District,name,gpa\n9,1,Big,1e400\n"),
            district="101",
            object="School",
        )
    assert "line 2, record 9, field gpa: '1e400' is not a number" in e.value.output
    assert not DistrictRecord.objects.filter(sync_object__name="School").exists()


def test_it_answers_a_doubled_key_in_a_deeply_nested_body_with_a_400(client, loaders):
    text = '[{"a": 1, "a": 2}, ' + "[" * 100_000 + "]" * 100_000 + "]"
    assert (
        "nests too deep"
        in problem(send(client, loaders.alice, text, content_type="application/json"))["detail"]
    )


def test_it_answers_409_with_retry_after_while_a_step_reads_the_records(client, loaders, monkeypatch):
    from history.models import DISBatchHistory, StepStatus
    from loads import actions as loads
    from tool import actions

    send(client, loaders.alice, SCHOOLS)
    request = actions.do_request_resync(actions.check_resync(loaders.district, None, ["School"], False))
    DISBatchHistory.objects.filter(request=request).update(status=StepStatus.RUNNING)
    monkeypatch.setattr(loads, "WAIT", 0)
    for response in (
        send(client, loaders.alice, [{**SCHOOLS[0], "name": "Renamed"}]),
        delete(client, loaders.alice, {"record_ids": [1]}),
    ):
        body = problem(response, 409)
        assert response["Retry-After"] == "30" and body["type"].endswith(":busy")
        assert "is still reading these records" in body["detail"]
    assert sorted(schools(loaders.district)) == [1, 2, 3, 4]
    assert schools(loaders.district)[1].payload["name"] == "Adair High"
