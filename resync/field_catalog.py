"""The payload fields StateSync ships for the sync objects (issue 13, "Field schemas").

Like resync.catalog, this is data: the data migration resync 0011 loads it, and from
then on the schemas are the state administrators' to edit in the catalog's admin
(each change recorded as a SyncFieldChange). Reloading never overwrites a field that
exists already, so a state's edits survive.

Each object lists the fields the demo generator (resync.demo) fills, with the types
it writes, plus a few optional ones a real SIS sends. Only a field the demo always
fills is required: the demo's records must stay valid under their schemas
(tests/test_field_catalog.py).

State-locked fields (the article's Synchronization Field Settings) are those the
state assigns and a district may only repeat: each carries its reason in `why`.
An object the catalog names but this module does not keeps an open schema
(allows_extra), so it stays loadable until the state writes its fields.
"""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    name: str
    type: str = "string"
    required: bool = False
    max_length: int | None = None
    codes: tuple[str, ...] = ()
    description: str = ""
    owner: str = "district"
    why: str = ""  # why a field is state-locked
    label: bool = False  # names the record to a person (the Error Log's Record column)


STATE = "state"
GRADES = ("PK", "KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")


def _grade(required: bool, description: str) -> Field:
    return Field("grade", "code", required, codes=GRADES, description=description)


def _value(description: str) -> tuple[Field, ...]:
    return (Field("value", "integer", True, description=description),)


NOTE = (Field("note", max_length=500, description="Free text from the SIS."),)

SCHEMAS: dict[str, tuple[Field, ...]] = {
    "District": (
        Field("name", required=True, max_length=100, description="The district's name.", label=True),
        Field(
            "code",
            required=True,
            max_length=16,
            description="The state district number.",
            owner=STATE,
            why="The state numbers its districts; a district repeats its number, never changes it.",
        ),
    ),
    "School": (
        Field("name", required=True, max_length=100, description="The school's name.", label=True),
        Field(
            "number",
            required=True,
            max_length=16,
            description="The state school number.",
            owner=STATE,
            why="The state numbers the schools: its reports join on this number.",
        ),
        Field("principal", max_length=100, description="The principal's name."),
    ),
    "Calendar": (
        Field("name", required=True, max_length=100, description="The calendar's name.", label=True),
        Field("start_date", "date", description="First day of the calendar."),
        Field("end_date", "date", description="Last day of the calendar."),
    ),
    "ScheduleStructure": (
        Field(
            "name", required=True, max_length=100, description="The schedule structure's name.", label=True
        ),
    ),
    "StructureGradeLevel": (_grade(True, "The grade level the structure serves."),),
    "Day": (
        Field("date", "date", True, description="The calendar day."),
        Field("instruction", "boolean", description="A day of instruction (not a holiday)."),
    ),
    "CourseSection": (
        Field("section", "integer", True, description="The section number within its course."),
        Field("teacher", max_length=100, description="The teacher of record."),
    ),
    "CourseCode": (
        Field("code", required=True, max_length=16, description="The course's code."),
        Field("title", required=True, max_length=100, description="The course's title.", label=True),
    ),
    "PersonIdentity": (
        Field("first", required=True, max_length=50, description="First name.", label=True),
        Field("last", required=True, max_length=50, description="Last name.", label=True),
        Field("middle", max_length=50, description="Middle name."),
        Field("birth_date", "date", description="Date of birth."),
        Field(
            "state_id",
            max_length=16,
            description="The student's state id (SSID).",
            owner=STATE,
            label=True,
            why=(
                "The state assigns the SSID and matches people across districts by it: "
                "a district sends the one it was given, and may not change it."
            ),
        ),
    ),
    "Enrollment": (
        _grade(True, "The grade the student is enrolled in."),
        Field("start_date", "date", description="First day of the enrollment."),
        Field("end_date", "date", description="Last day; empty while the enrollment is open."),
        Field(
            "service_type",
            "code",
            codes=("P", "S", "N"),
            description="Primary, secondary or special-ed services only.",
        ),
    ),
    "AttendanceExactCount": _value("Minutes present that day."),
    "AttendanceKYMinute": _value("Minutes of instruction counted for Kentucky."),
    "CustomStudent": _value("A district-defined student value."),
    "Title1KY": _value("Title I service minutes."),
    "Roster": (
        Field("start_date", "date", description="First day on the roster."),
        Field("end_date", "date", description="Last day on the roster."),
    ),
    "Behavior": NOTE,
    "ContactLog": NOTE,
    "HealthScreening": NOTE,
    "ImmCertificate": NOTE,
    "VaccineShot": NOTE,
    "Transportation": NOTE,
    "ProgramParticipation": NOTE,
    "LEPKY": NOTE,
    "GiftedStatusKY": NOTE,
    "Plan": (
        Field("kind", "code", True, codes=("IEP", "504", "ILP"), description="The kind of plan."),
        Field("start_date", "date", description="When the plan took effect."),
    ),
    "PlanProgressReport": (Field("period", "integer", True, description="The reporting period."),),
    "Test": (
        Field("name", required=True, max_length=100, description="The test's name.", label=True),
        Field(
            "state_code",
            max_length=16,
            description="The state's code of the test; empty for a national test.",
            owner=STATE,
            why=(
                "The State Edition publishes the state's tests with their codes, and scores "
                "are matched to the state's test by it: a district may not recode a test."
            ),
        ),
        Field("national_code", max_length=16, description="The national code (ACT, SAT…); may be empty."),
        Field(
            "published",
            "boolean",
            description="Published from the State Edition.",
            owner=STATE,
            why="Only the State Edition publishes a test; a district cannot publish one itself.",
        ),
        Field("end_year", "integer", description="The school year the test ends in; empty if open."),
        Field("district_locked", "boolean", description="The district locked the test from sync."),
    ),
    "TestScore": (
        Field("date", "date", description="The date the test was taken."),
        Field("score", "number", True, description="The scale score."),
    ),
}


def load_field_catalog(
    sync_object_model, field_model, schemas: dict[str, tuple[Field, ...]] = SCHEMAS
) -> None:
    """Create the shipped fields that do not exist yet. Takes the model classes so a
    data migration can pass its historical models (which record no change: shipping
    a schema is not editing one). Objects with no shipped fields get an open schema."""
    # Migrations before resync 0014 pass a SyncField without its label flag.
    labels = any(f.name == "label" for f in field_model._meta.get_fields())
    objects = {o.name: o for o in sync_object_model.objects.all()}
    have = set(field_model.objects.values_list("sync_object__name", "name"))
    field_model.objects.bulk_create(
        field_model(
            sync_object=objects[name],
            name=f.name,
            type=f.type,
            required=f.required,
            max_length=f.max_length,
            codes=list(f.codes),
            description=f.description,
            owner=f.owner,
            position=i,
            **({"label": f.label} if labels else {}),
        )
        for name, fields in schemas.items()
        if name in objects
        for i, f in enumerate(fields)
        if (name, f.name) not in have
    )
    sync_object_model.objects.exclude(name__in=list(schemas)).filter(fields__isnull=True).update(
        allows_extra=True
    )
