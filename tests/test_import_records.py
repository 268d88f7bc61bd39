"""Loading district records from files: import_records on real rows (loads.actions)."""

import io
import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from guardian.shortcuts import assign_perm

from core.errors import ResyncError, RightsError
from loads.actions import check_load
from loads.models import Load
from resync import groups, rights
from resync.models import District, DistrictRecord, StateRecord, SyncField, SyncObject
from tool import actions as tool_actions

from .conftest import BOTH, COMMITTED, add, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the snapshot test's resyncs are run by a worker (run_queue), which needs committed rows.

SCHOOLS_CSV = (
    "record_id,parent:District,name,opened,state_number\n"
    "1,1,Adair High,2001-08-15,KY-1\n"
    "2,1,Adair Middle,,KY-2\n"
    '3,1,"Adair Elementary, North",1999-08-20,\n'
    "4,1,Adair Primary,2010-08-10,KY-4\n"
)


@pytest.fixture
def schema(district):
    """Schemas of their own for School and Enrollment (whatever the shipped ones say),
    and the District record the schools hang under."""
    school, enrollment = SyncObject.objects.get(name="School"), SyncObject.objects.get(name="Enrollment")
    SyncField.objects.filter(sync_object__in=[school, enrollment]).delete()
    for obj, name, kind, extra in [
        (school, "name", SyncField.Type.STRING, {"required": True, "max_length": 40}),
        (school, "opened", SyncField.Type.DATE, {}),
        (school, "state_number", SyncField.Type.STRING, {"owner": SyncField.Owner.STATE}),
        (enrollment, "start_date", SyncField.Type.DATE, {"required": True}),
        (enrollment, "grade", SyncField.Type.CODE, {"codes": ["09", "10"]}),
    ]:
        SyncField.objects.create(sync_object=obj, name=name, type=kind, **extra)
    add(district, "District", 1)
    return district


def load(path, *args, **options):
    """import_records' output; raises CommandError with the output in `.output`."""
    out = io.StringIO()
    try:
        call_command("import_records", str(path), *args, stdout=out, **options)
    except CommandError as e:
        e.output = out.getvalue()
        raise
    return out.getvalue()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def schools(district) -> dict:
    return {
        r.record_id: r
        for r in DistrictRecord.objects.filter(district=district, sync_object__name="School").order_by(
            "record_id"
        )
    }


def test_it_loads_a_good_csv_typed_by_the_schema(schema, tmp_path):
    out = load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School")
    got = schools(schema)
    assert sorted(got) == [1, 2, 3, 4]
    assert got[3].payload == {"name": "Adair Elementary, North", "opened": "1999-08-20"}
    assert got[1].parent_ids == {"District": 1} and got[1].school_year is None
    assert "read 4, inserted 4, updated 0, unchanged 0, deleted 0, rejected 0" in out
    assert Load.objects.get().inserted == 4


def test_it_loads_ndjson_in_the_scoped_year(schema, tmp_path):
    add(schema, "PersonIdentity", 7, {"ScheduleStructure": 1})
    lines = [
        {"record_id": 1, "parents": {"PersonIdentity": 7}, "start_date": "2026-08-12", "grade": "09"},
        {"record_id": 2, "school_year": 2027, "parents": {"PersonIdentity": 7}, "start_date": "2026-08-13"},
    ]
    path = write(tmp_path, "enr.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    load(path, district="101", object="Enrollment")
    got = DistrictRecord.objects.filter(sync_object__name="Enrollment").order_by("record_id")
    assert [(r.record_id, r.school_year, r.payload) for r in got] == [
        (1, 2027, {"start_date": "2026-08-12", "grade": "09"}),
        (2, 2027, {"start_date": "2026-08-13"}),
    ]


def test_it_reads_standard_input(schema, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(SCHOOLS_CSV.encode())))
    load("-", district="101", object="School", format="csv")
    assert sorted(schools(schema)) == [1, 2, 3, 4]


def test_it_changes_no_row_when_the_same_file_is_loaded_twice(schema, tmp_path):
    path = write(tmp_path, "schools.csv", SCHOOLS_CSV)
    load(path, district="101", object="School")
    before = {rid: r.changed_at for rid, r in schools(schema).items()}
    out = load(path, district="101", object="School")
    assert {rid: r.changed_at for rid, r in schools(schema).items()} == before
    assert "inserted 0, updated 0, unchanged 4" in out

    load(
        write(tmp_path, "one.csv", SCHOOLS_CSV.replace("Adair Primary", "Adair Primary East")),
        district="101",
        object="School",
    )
    after = schools(schema)
    assert [rid for rid, r in after.items() if r.changed_at != before[rid]] == [4]
    assert after[4].payload["name"] == "Adair Primary East"


def test_it_counts_a_null_as_the_empty_cell_it_is(schema, tmp_path):
    text = '{"record_id": 2, "parents": {"District": 1}, "name": "Adair Middle", "opened": null, "state_number": "KY-2"}\n'
    load(write(tmp_path, "one.ndjson", text), district="101", object="School")
    before = schools(schema)[2].changed_at
    out = load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School")
    assert "inserted 3, updated 0, unchanged 1" in out and schools(schema)[2].changed_at == before


def test_it_writes_nothing_for_one_bad_row_and_names_its_line_and_field(schema, tmp_path, monkeypatch):
    # Batches of two: the first two rows are written before line 5 is read, and undone.
    monkeypatch.setattr("loads.actions.BATCH", 2)
    bad = SCHOOLS_CSV.replace("2010-08-10", "2010-13-45")
    with pytest.raises(CommandError, match="nothing was written") as e:
        load(write(tmp_path, "schools.csv", bad), district="101", object="School")
    assert "line 5, record 4, field opened: '2010-13-45' is not a date (YYYY-MM-DD)" in e.value.output
    assert schools(schema) == {} and not Load.objects.exists()


def test_it_skips_the_invalid_row_and_reports_it(schema, tmp_path):
    bad = SCHOOLS_CSV.replace("Adair Middle", "x" * 41)
    path = write(tmp_path, "schools.csv", bad)
    out = load(path, district="101", object="School", skip_invalid=True)
    assert sorted(schools(schema)) == [1, 3, 4]
    assert "rejected 1" in out and f"{path}.rejected.ndjson" in out
    (reported,) = [json.loads(x) for x in (tmp_path / "schools.csv.rejected.ndjson").read_text().splitlines()]
    assert reported["line"] == 3 and reported["row"]["record_id"] == 2
    assert reported["problems"] == [{"field": "name", "message": "longer than 40 characters (41)"}]


def test_it_refuses_a_duplicate_id_on_the_later_line(schema, tmp_path):
    dup = SCHOOLS_CSV + "2,1,Adair Again,,\n"
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "schools.csv", dup), district="101", object="School")
    assert "line 6, record 2, field record_id: record 2 appears earlier in this file" in e.value.output
    assert "line 3" not in e.value.output and schools(schema) == {}


def test_it_refuses_non_utf8_bytes_naming_the_line(schema, tmp_path):
    raw = SCHOOLS_CSV.encode().replace(b"Adair Middle", b"Adair M\xe9ddle")
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "schools.csv", raw), district="101", object="School")
    assert "line 3, record ?: the line is not valid UTF-8." in e.value.output
    assert "rejected 1" in e.value.output and schools(schema) == {}


def test_it_refuses_a_truncated_ndjson_line(schema, tmp_path):
    text = (
        '{"record_id": 1, "parents": {"District": 1}, "name": "A"}\n{"record_id": 2, "parents": {"Dis\n[3]\n'
    )
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "schools.ndjson", text), district="101", object="School")
    assert "line 2, record ?: not a JSON object (truncated?)" in e.value.output
    assert "line 3, record ?: a line must hold one JSON object, not list." in e.value.output
    assert schools(schema) == {}


def test_it_refuses_an_unknown_district_by_its_code(schema, tmp_path):
    with pytest.raises(CommandError, match="No district with code '999'"):
        load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="999", object="School")


def test_it_refuses_a_year_on_an_object_not_tied_to_one(schema, tmp_path):
    with pytest.raises(CommandError, match="School is not tied to a school year"):
        load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School", year=2027)
    with pytest.raises(CommandError) as e:
        load(
            write(tmp_path, "y.csv", "record_id,school_year,parent:District,name\n1,2027,1,A\n"),
            district="101",
            object="School",
        )
    assert (
        "line 2, record 1, field school_year: refused: School is not tied to a school year" in e.value.output
    )


def test_it_refuses_a_change_to_a_state_locked_field(schema, tmp_path):
    load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School")
    changed = SCHOOLS_CSV.replace("KY-2", "KY-22").replace("Adair High", "Adair Senior High")
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "changed.csv", changed), district="101", object="School")
    assert "line 3, record 2, field state_number: state-locked" in e.value.output
    assert schools(schema)[1].payload["name"] == "Adair High"  # atomic: the good change waits too


def test_it_refuses_an_empty_snapshot(schema, tmp_path):
    load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School")
    with pytest.raises(CommandError) as e:
        load(
            write(tmp_path, "none.csv", "record_id,parent:District,name\n"),
            district="101",
            object="School",
            snapshot=True,
        )
    assert "a snapshot of nothing" in e.value.output and len(schools(schema)) == 4


def test_check_load_rights(schema):
    # A district user holding the district right but not district data W is refused;
    # with it, allowed; a State Administrator (the group loads 0002 gave it) is allowed.
    alice = User.objects.create_user("alice", password="pw")
    assign_perm(rights.DISTRICT, alice, schema)
    with pytest.raises(RightsError, match="district data W"):
        check_load(schema, "School", None, alice)
    alice.user_permissions.add(Permission.objects.get(codename="load_district_data"))
    alice = User.objects.get(pk=alice.pk)  # a fresh permission cache
    assert check_load(schema, "School", None, alice).district == schema
    other = District.objects.create(state=schema.state, code="202", name="Boone", scope_year=2027)
    with pytest.raises(RightsError, match="district 202"):
        check_load(other, "School", None, alice)
    stella = User.objects.create_user("stella", password="pw")
    stella.groups.add(Group.objects.get(name=groups.STATE_ADMINS))
    assert check_load(other, "School", None, stella).district == other
    with pytest.raises(ResyncError, match="School year 2031 is not configured"):
        check_load(schema, "Enrollment", 2031, stella)


@COMMITTED
def test_it_deletes_what_a_snapshot_leaves_out_and_the_next_resync_removes_exactly_those(
    schema, tmp_path, queue
):
    load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School")
    tool_actions.do_request_resync(tool_actions.check_resync(schema, None, ["District", "School"], False))
    run_queue()
    state = StateRecord.objects.filter(district_code="101", sync_object="School")
    assert sorted(state.values_list("record_id", flat=True)) == [1, 2, 3, 4]

    kept = "\n".join(line for line in SCHOOLS_CSV.splitlines() if not line.startswith(("2,", "4,"))) + "\n"
    out = load(write(tmp_path, "kept.csv", kept), district="101", object="School", snapshot=True)
    assert "deleted 2" in out and sorted(schools(schema)) == [1, 3]
    assert District.objects.get(pk=schema.pk).records_deleted_at is not None

    tool_actions.do_request_resync(tool_actions.check_resync(schema, None, ["School"], False))
    run_queue()
    assert sorted(state.values_list("record_id", flat=True)) == [1, 3]
    assert StateRecord.objects.filter(district_code="101", sync_object="District").count() == 1


def test_it_refuses_a_nul_character_and_a_row_of_another_year(schema, tmp_path):
    add(schema, "PersonIdentity", 7, {"ScheduleStructure": 1})
    text = (
        '{"record_id": 1, "parents": {"PersonIdentity": 7}, "start_date": "2026-08-12", "grade": "0\\u00009"}\n'
        '{"record_id": 2, "school_year": 2028, "parents": {"PersonIdentity": 7}, "start_date": "2027-08-12"}\n'
    )
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "enr.ndjson", text), district="101", object="Enrollment", year=2027)
    assert "line 1, record 1: the string '09' holds a NUL character" in e.value.output
    assert "line 2, record 2, field school_year: 2028 is not this load's year, 2027" in e.value.output


def test_it_refuses_a_record_id_past_the_databases_bigint(schema, tmp_path):
    text = '{"record_id": 9223372036854775808, "parents": {"District": 1}, "name": "A"}\n'
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "schools.ndjson", text), district="101", object="School")
    assert "field record_id: a record id is at most 9223372036854775807" in e.value.output


def test_it_deletes_nothing_when_a_snapshot_refused_a_row(schema, tmp_path):
    # The refused row's id cannot be read (its bytes are not UTF-8): a snapshot that
    # deleted "what the file does not hold" would delete record 2, which the district has.
    load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School")
    kept = SCHOOLS_CSV.encode().replace(b"2,1,Adair Middle", b"2,1,Adair \xffMiddle")
    kept = b"\n".join(line for line in kept.splitlines() if not line.startswith(b"4,")) + b"\n"
    out = load(
        write(tmp_path, "kept.csv", kept),
        district="101",
        object="School",
        snapshot=True,
        skip_invalid=True,
        report=str(tmp_path / "refused.ndjson"),
    )
    assert (
        "deleted 0, rejected 1" in out and "Snapshot: nothing deleted, because 1 row(s) were refused" in out
    )
    assert sorted(schools(schema)) == [1, 2, 3, 4]


def test_it_refuses_to_move_a_record_to_another_year(schema, tmp_path):
    add(schema, "PersonIdentity", 7, {"ScheduleStructure": 1})
    add(schema, "Enrollment", 5, {"PersonIdentity": 7}, {"start_date": "2025-08-12"}, year=2026)
    text = '{"record_id": 5, "school_year": 2027, "parents": {"PersonIdentity": 7}, "start_date": "2026-08-12"}\n'
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "enr.ndjson", text), district="101", object="Enrollment", year=2027)
    assert "line 1, record 5, field record_id: record 5 belongs to school year 2026" in e.value.output
    assert DistrictRecord.objects.get(sync_object__name="Enrollment", record_id=5).school_year == 2026


def test_it_counts_a_dry_run_as_a_load_and_keeps_nothing(schema, tmp_path):
    from loads.actions import do_load, wire_rows
    from loads.files import read

    load(write(tmp_path, "schools.csv", SCHOOLS_CSV), district="101", object="School")
    before = {rid: (r.payload, r.changed_at) for rid, r in schools(schema).items()}
    changed = (
        SCHOOLS_CSV.replace("Adair Primary", "Adair Primary East").replace("2,1,Adair Middle,,KY-2\n", "")
        + "5,1,Adair Annex,,\n"
    )
    checked = check_load("101", "School", None)
    rows = wire_rows(checked, read(io.BytesIO(changed.encode()), "csv"), "csv")
    result = do_load(checked, rows, snapshot=True, dry_run=True)
    assert (result.inserted, result.updated, result.unchanged, result.deleted) == (1, 1, 2, 1)
    assert not result.written and result.load is None
    assert {rid: (r.payload, r.changed_at) for rid, r in schools(schema).items()} == before
    assert Load.objects.count() == 1


def test_it_loads_as_a_user_checked_with_their_rights(schema, tmp_path):
    path = write(tmp_path, "schools.csv", SCHOOLS_CSV)
    bob = User.objects.create_user("bob", password="pw")
    assign_perm(rights.DISTRICT, bob, schema)
    with pytest.raises(CommandError, match="district data W"):
        load(path, district="101", object="School", user="bob")
    assert schools(schema) == {} and not Load.objects.exists()
    bob.user_permissions.add(Permission.objects.get(codename="load_district_data"))
    load(path, district="101", object="School", user="bob")
    assert Load.objects.get().loaded_by == bob and len(schools(schema)) == 4
    with pytest.raises(CommandError, match="No user named 'ghost'."):
        load(path, district="101", object="School", user="ghost")


def test_it_refuses_a_key_given_twice_on_an_ndjson_line_naming_it(schema, tmp_path):
    text = '{"record_id": 1, "parents": {"District": 1}, "name": "A", "name": "B"}\n'
    with pytest.raises(CommandError) as e:
        load(write(tmp_path, "schools.ndjson", text), district="101", object="School")
    assert (
        "line 1, record ?: the key 'name' appears twice in one object: send each key once." in e.value.output
    )
    assert schools(schema) == {}
