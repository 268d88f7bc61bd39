"""The catalog against the article's own table.

ARTICLE_PARENTS is the "Parent Objects" column of the seed's Campus Object
Hierarchies table, copied row by row (top-level first, immediate last). The
catalog stores only immediate parents; deriving every full list from them must
give back this column, except where tests below pin a reading we chose.
"""

import pytest

from resync import planner
from resync.catalog import ALIASES, CATALOG, parents_map
from resync.models import SyncObject

D, S, C, SS, PI, E = "District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Enrollment"
UNDER_PI = [D, S, C, SS, PI]
UNDER_E = [D, S, C, SS, PI, E]

ARTICLE_PARENTS: dict[str, list[str]] = {
    "AttendanceBIEAbsentDays": UNDER_E,
    "AttendanceExactCount": UNDER_E,
    "AttendanceGroupKY": UNDER_E,
    "AttendanceKYMinute": UNDER_E,
    "AttendanceSDMinute": UNDER_E,
    "Behavior": UNDER_PI,
    "Calendar": [D, S],
    "CensusContactSummary": UNDER_PI,
    "ContactLog": UNDER_PI,
    "CourseCode": [],
    "CourseSection": [D, S, C],
    "CustomStudent": UNDER_E,
    "CTEDataME": UNDER_PI,
    "Day": UNDER_PI,
    "District": [],
    "Employment": UNDER_PI,
    "EmploymentAssignment": UNDER_PI,
    "EmploymentBackground": UNDER_PI,
    "EmploymentCredential": UNDER_PI,
    "Enrollment": UNDER_PI,
    "ESSKY": UNDER_E,
    "Form": UNDER_PI,
    "FRYSCGroupProgramKY": UNDER_PI,
    "FRYSCGroupStatusKY": UNDER_PI + ["FRYSCGroupProgramKY"],
    "FRYSCStatusKY": UNDER_E,
    "GiftedStatusKY": UNDER_PI,
    "Graduation": UNDER_E,
    "HealthScreening": UNDER_PI,
    "ImmCertificate": UNDER_PI,
    "ISEPResidentialCertification": [],
    "ISEPResidentialVerification": [],
    "LEPKY": UNDER_PI,
    "MedicaidInsurance": UNDER_PI,
    "NASIS": UNDER_PI,
    "PersonIdentity": [D, S, C, SS],
    "PersonIdentityNoStateIDOnly": [D, S, C, SS],
    "Plan": UNDER_PI,
    "PlanProgressReport": UNDER_PI + ["Plan"],
    "POSEligibility": UNDER_PI,
    "PreSchoolKY": UNDER_E,
    "ProcessMessage": UNDER_PI,
    "ProgramParticipation": UNDER_PI,
    "ReportingEntity": [],
    "Roster": [D, S, C, SS, "StructureGradeLevel", PI, E],
    "ScheduleStructure": [D, S, C],
    "School": [D],
    "StructureGradeLevel": [D, S, C, SS],
    "TeamMember": UNDER_PI,
    "TEDSKY": UNDER_PI,
    "Test": UNDER_PI,
    "TestScore": UNDER_PI + ["Test"],
    "Title1KY": UNDER_E,
    "Transportation": UNDER_PI,
    "Truancy": UNDER_PI,
    "VaccineShot": UNDER_PI,
}

# Rows where we chose another reading than the object's own row; see catalog.py.
CHOSEN: dict[str, list[str]] = {
    "Day": [D, S, C, SS],  # parent ScheduleStructure, not PersonIdentity
    "TeamMember": UNDER_E,  # parent Enrollment, not PersonIdentity
    "Evaluation": UNDER_E,  # no row of its own: Enrollment's child list
}


def derived(name: str) -> list[str]:
    # ReportingEntity is the optional top level; the article's column omits it.
    return [a for a in planner.ancestor_order(parents_map(), name) if a != "ReportingEntity"]


def respects_dependencies(order: list[str]) -> bool:
    parents = parents_map()
    seen: set[str] = set()
    for name in order:
        if any(p in order and p not in seen for p in parents[name]):
            return False
        seen.add(name)
    return True


@pytest.mark.parametrize("name", sorted(ARTICLE_PARENTS | CHOSEN))
def test_it_derives_each_objects_parent_column(name):
    expected = CHOSEN.get(name, ARTICLE_PARENTS.get(name))
    got = derived(name)
    assert set(got) == set(expected), name
    assert respects_dependencies(got)
    # The article lists Roster's StructureGradeLevel before PersonIdentity; the two
    # have no dependency between them, so only their relative order may differ.
    if name != "Roster":
        assert got == expected


def test_it_has_every_row_of_the_table_and_nothing_else():
    assert {e.name for e in CATALOG} == set(ARTICLE_PARENTS) | {"Evaluation"}


def test_it_records_why_for_each_chosen_reading():
    notes = {e.name: e.why for e in CATALOG}
    for name in ["Day", "TeamMember", "Evaluation", "LEPKY", "HealthScreening", "Roster", "ReportingEntity"]:
        assert name in notes and notes[name], name
    assert "ScheduleStructure" in notes["Day"]
    assert "Enrollment" in notes["TeamMember"]


def test_it_reads_day_and_teammember_as_chosen():
    parents = parents_map()
    assert parents["Day"] == ("ScheduleStructure",)
    assert parents["TeamMember"] == ("Enrollment",)
    assert "Day" not in planner.ancestors(parents, "Day")
    assert "PersonIdentity" not in planner.ancestors(parents, "Day")


def test_it_accepts_the_articles_other_spellings():
    parents = parents_map()
    assert planner.resolve(parents, ["LepKY", "Health Screening", "lepky"], ALIASES) == [
        "LEPKY",
        "HealthScreening",
    ]


def test_it_marks_editions_from_the_object_names():
    editions = {e.name: e.editions for e in CATALOG}
    for name, eds in editions.items():
        if name.endswith("KY"):
            assert eds == ("KY",), name
    assert editions["AttendanceSDMinute"] == ("SD",)
    assert editions["CTEDataME"] == ("ME",)
    assert editions["AttendanceBIEAbsentDays"] == ("BIE",)
    assert editions["District"] == ()


@pytest.mark.django_db
def test_it_loads_the_catalog_by_migration():
    assert SyncObject.objects.count() == len(CATALOG)
    assert SyncObject.objects.parents_map() == parents_map()
    assert not SyncObject.objects.get(name="ReportingEntity").enabled
    assert SyncObject.objects.get(name="Day").note.startswith("Day's own row")


@pytest.mark.django_db
def test_it_lists_only_year_objects_configured_for_another_year():
    this_year = set(SyncObject.objects.for_year(2026, 2026).values_list("name", flat=True))
    next_year = set(SyncObject.objects.for_year(2026, 2027).values_list("name", flat=True))
    assert "District" in this_year and "District" not in next_year  # not tied to a year
    assert "Graduation" in this_year and "Graduation" not in next_year  # not configured
    assert "Enrollment" in next_year
    assert next_year < this_year
