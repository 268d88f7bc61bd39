"""Validating one record against its schema (resync.schemas): pure, on unsaved fields,
except where the validator is read from the catalog."""

import pytest

from resync.models import SyncField, SyncObject
from resync.schemas import Problem, RecordValidator, validator_for

T = SyncField.Type


def enrollment(allows_extra: bool = False) -> RecordValidator:
    fields = [
        SyncField(name="grade", type=T.CODE, required=True, codes=["09", "10", "11", "12"]),
        SyncField(name="end_date", type=T.DATE),
        SyncField(name="minutes", type=T.INTEGER),
        SyncField(name="gpa", type=T.NUMBER),
        SyncField(name="active", type=T.BOOLEAN),
        SyncField(name="seen_at", type=T.DATETIME),
        SyncField(name="note", type=T.STRING, max_length=5),
        SyncField(name="state_id", owner=SyncField.Owner.STATE),
    ]
    return RecordValidator("Enrollment", fields, ("PersonIdentity",), True, allows_extra)


def district() -> RecordValidator:
    return RecordValidator("District", [SyncField(name="name", required=True)], (), False)


GOOD = {"record_id": 7, "school_year": 2027, "parents": {"PersonIdentity": 3}, "grade": "09"}
GOOD_CSV = {"record_id": "7", "school_year": "2027", "parent:PersonIdentity": "3", "grade": "09"}


def problems(row: dict, v: RecordValidator | None = None) -> list[Problem]:
    return (v or enrollment()).problems(row)


def test_it_accepts_a_good_record_with_every_type():
    row = dict(
        GOOD,
        state_excluded=False,
        end_date="2027-05-30",
        minutes=300,
        gpa=3.5,
        active=True,
        seen_at="2027-05-30T08:00:00+00:00",
        note="ok",
        state_id=None,
    )
    assert problems(row) == []


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("minutes", "300", "'300' is not an integer"),
        ("minutes", True, "True is not an integer"),
        ("gpa", "3.5", "'3.5' is not a number"),
        ("active", "yes", "'yes' is not true or false"),
        ("end_date", "2027-02-30", "'2027-02-30' is not a date (YYYY-MM-DD)"),
        ("end_date", "20270530", "'20270530' is not a date (YYYY-MM-DD)"),
        ("end_date", 20270530, "20270530 is not a date (YYYY-MM-DD)"),
        ("seen_at", "2027-05-30", "'2027-05-30' is not a date and time (ISO 8601)"),
        ("note", 5, "5 is not text"),
    ],
)
def test_it_refuses_a_bad_type_naming_the_field(field, value, says):
    assert problems(dict(GOOD, **{field: value})) == [Problem(field, says)]


def test_it_refuses_a_missing_required_field():
    row = {k: v for k, v in GOOD.items() if k != "grade"}
    assert problems(row) == [Problem("grade", "required")]
    assert problems(dict(GOOD, grade=None)) == [Problem("grade", "required: null is no value")]


def test_it_takes_null_as_absent_for_an_optional_field():
    assert problems(dict(GOOD, end_date=None, minutes=None)) == []


def test_it_refuses_an_unknown_field_unless_the_schema_allows_extras():
    row = dict(GOOD, colour="blue")
    assert problems(row) == [Problem("colour", "unknown field: Enrollment's schema does not name it")]
    assert problems(row, enrollment(allows_extra=True)) == []


def test_it_refuses_a_code_outside_its_list():
    assert problems(dict(GOOD, grade="13")) == [
        Problem("grade", "'13' is not one of its codes: 09, 10, 11, 12")
    ]


def test_it_refuses_a_text_over_its_max_length():
    assert problems(dict(GOOD, note="abcdef")) == [Problem("note", "longer than 5 characters (6)")]
    assert problems(dict(GOOD, note="abcde")) == []


def test_it_refuses_a_missing_and_an_extra_parent_key():
    assert problems(dict(GOOD, parents={})) == [
        Problem("parents.PersonIdentity", "missing parent: Enrollment needs its PersonIdentity")
    ]
    assert problems(dict(GOOD, parents={"PersonIdentity": 3, "School": 1})) == [
        Problem("parents.School", "not a parent of Enrollment (its parents: PersonIdentity)")
    ]
    assert problems({k: v for k, v in GOOD.items() if k != "parents"}) == [
        Problem("parents", "required: Enrollment's parents are PersonIdentity")
    ]
    assert problems(dict(GOOD, parents={"PersonIdentity": "3"})) == [
        Problem("parents.PersonIdentity", "a parent's record id is a positive integer, not '3'")
    ]
    assert problems(dict(GOOD, parents=[3])) == [
        Problem("parents", "parents is an object: {ParentObject: parent record id}")
    ]


def test_it_refuses_parents_on_an_object_without_any():
    assert district().problems({"record_id": 1, "name": "Adair", "parents": {"School": 1}}) == [
        Problem("parents.School", "not a parent of District (its parents: none)")
    ]


def test_it_refuses_a_school_year_on_an_object_not_tied_to_one():
    assert district().problems({"record_id": 1, "name": "Adair", "school_year": 2027}) == [
        Problem("school_year", "refused: District is not tied to a school year")
    ]
    assert district().problems({"record_id": 1, "name": "Adair"}) == []


def test_it_requires_a_school_year_on_a_year_object():
    row = {k: v for k, v in GOOD.items() if k != "school_year"}
    assert problems(row) == [Problem("school_year", "required: Enrollment is tied to a school year")]
    assert problems(dict(GOOD, school_year="2027")) == [
        Problem("school_year", "a school year is its ending year (2027 for 2026-27), not '2027'")
    ]


@pytest.mark.parametrize("record_id", [0, -4, "7", 7.5, True, None])
def test_it_refuses_a_record_id_that_is_not_a_positive_integer(record_id):
    assert problems(dict(GOOD, record_id=record_id)) == [
        Problem("record_id", f"a record id is a positive integer, not {record_id!r}")
    ]


def test_it_refuses_a_state_excluded_that_is_not_boolean():
    assert problems(dict(GOOD, state_excluded="true")) == [
        Problem("state_excluded", "state_excluded is true or false, not 'true'")
    ]


def test_it_lists_every_problem_of_a_record_keys_first():
    row = {"record_id": 0, "grade": "13", "minutes": "x", "colour": 1, "parents": {"PersonIdentity": 3}}
    assert [p.field for p in problems(row)] == ["record_id", "school_year", "colour", "grade", "minutes"]


def test_it_refuses_a_record_that_is_no_object():
    assert problems([1, 2]) == [Problem("record", "a record is a JSON object, not list")]


def test_it_types_a_csv_row_by_the_schema():
    row = {
        "record_id": "7",
        "school_year": "2027",
        "state_excluded": "TRUE",
        "parent:PersonIdentity": "3",
        "grade": "09",
        "minutes": "300",
        "gpa": "3.5",
        "active": "false",
        "end_date": "2027-05-30",
        "note": "",
    }
    wire = enrollment().from_csv(row)
    assert wire == {
        "record_id": 7,
        "school_year": 2027,
        "state_excluded": True,
        "parents": {"PersonIdentity": 3},
        "grade": "09",
        "minutes": 300,
        "gpa": 3.5,
        "active": False,
        "end_date": "2027-05-30",
    }
    assert problems(wire) == []


def test_it_keeps_a_csv_value_that_does_not_parse_so_problems_names_it():
    v = enrollment()
    wire = v.from_csv(
        {
            "record_id": "x7",
            "school_year": "2027",
            "parent:PersonIdentity": "3",
            "grade": "09",
            "minutes": "3 hundred",
            "active": "yes",
            "colour": "blue",
        }
    )
    assert wire["minutes"] == "3 hundred" and wire["active"] == "yes" and wire["colour"] == "blue"
    assert [p.field for p in v.problems(wire)] == ["record_id", "active", "colour", "minutes"]


def test_it_takes_an_empty_cell_as_absent():
    v = enrollment()
    wire = v.from_csv({"record_id": "7", "school_year": "2027", "parent:PersonIdentity": "3", "grade": ""})
    assert "grade" not in wire
    assert v.problems(wire) == [Problem("grade", "required")]


def test_it_names_cells_beyond_the_header():
    v = enrollment()
    wire = v.from_csv({**GOOD_CSV, None: ["surplus"]})
    assert v.problems(wire) == [Problem("(extra cells)", "the row has more cells than its header names")]


def test_it_splits_a_valid_row():
    v = enrollment()
    assert v.split(dict(GOOD, minutes=5, state_excluded=True)) == (
        7,
        2027,
        {"PersonIdentity": 3},
        {"grade": "09", "minutes": 5},
        True,
    )
    assert district().split({"record_id": 1, "name": "Adair"}) == (1, None, {}, {"name": "Adair"}, False)


def test_it_lists_the_state_locked_fields_a_change_would_touch():
    v = enrollment()
    assert v.locked_changes({"state_id": "KY1", "grade": "09"}, {"state_id": "KY1", "grade": "10"}) == []
    assert v.locked_changes({"state_id": "KY1"}, {"state_id": "KY2"}) == [
        Problem("state_id", "state-locked: a district load may not change it ('KY1' → 'KY2')")
    ]
    assert [p.field for p in v.locked_changes({"state_id": "KY1"}, {})] == ["state_id"]
    assert v.locked_changes({"state_id": None}, {}) == []


@pytest.mark.django_db
def test_it_reads_the_validator_from_the_catalog(catalog):
    v = validator_for(SyncObject.objects.get(name="TestScore"))
    assert v.parents == ("PersonIdentity", "Test") and v.year_scoped
    assert "score" in v.fields
    # ReportingEntity is switched off: District's records name no parent.
    assert validator_for(SyncObject.objects.get(name="District")).parents == ()


@pytest.mark.django_db
def test_it_sees_a_schema_edit_in_the_next_validator(catalog):
    obj = SyncObject.objects.get(name="School")
    row = {"record_id": 1, "parents": {"District": 1}, "name": "Adair High", "number": "001", "motto": "Go"}
    assert [p.field for p in validator_for(obj).problems(row)] == ["motto"]
    SyncField.objects.create(sync_object=obj, name="motto", max_length=40)
    assert validator_for(obj).problems(row) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"record_id": 7.0}, "record_id"),
        ({"parents": {"PersonIdentity": 3.0}}, "parents.PersonIdentity"),
        ({"minutes": 5.0}, "minutes"),
        ({"minutes": True}, "minutes"),
        ({"gpa": True}, "gpa"),
        ({"minutes": 2**63}, "minutes"),
        ({"record_id": 2**63}, "record_id"),
    ],
)
def test_it_takes_an_integer_only_as_a_json_integer_a_database_can_store(change, field):
    # JSON Schema calls 7.0 an integer: stored, it would be a float at the state.
    assert [p.field for p in problems({**GOOD, **change})] == [field]


def test_it_leaves_a_csv_integer_of_thousands_of_digits_as_text_for_the_schema_to_refuse():
    row = enrollment().from_csv({**GOOD_CSV, "record_id": "9" * 5000, "minutes": "1" * 5000})
    assert row["record_id"] == "9" * 5000 and row["minutes"] == "1" * 5000
    assert sorted(p.field for p in problems(row)) == ["minutes", "record_id"]
