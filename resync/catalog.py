"""The sync-object catalog, transcribed from the product article's
"Campus Object Hierarchies" table (shared seed 000_dc499415113f05ae).

Each entry names an object's *immediate* parents. The full ancestor list the
article prints in its "Parent Objects" column is derived from these by the
planner, and tests/test_catalog.py compares the two object by object.

Where the article contradicts itself we chose one reading. The rule we used:
an object's own row decides, unless two other rows agree against it (a parent
row marks it as an immediate child with * and the parent named by its own row
does not list it as a child at all). Each such case carries a `why` below.

Columns:
  parents      immediate parents, in the article's order
  year         tied to a school year (only such objects are offered for a
               previous/next-year resync)
  editions     state editions the object belongs to; empty means every edition
  other_years  configured to sync for the previous/next year as well
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    name: str
    parents: tuple[str, ...]
    year: bool
    editions: tuple[str, ...] = ()
    other_years: bool = True
    enabled: bool = True
    why: str = ""


PI = ("PersonIdentity",)
ENR = ("Enrollment",)

CATALOG: tuple[Entry, ...] = (
    Entry(
        "ReportingEntity",
        (),
        year=False,
        enabled=False,
        why=(
            "Optional top level above District, switched off by default: the article says it "
            "applies 'ONLY WHEN THE REPORTING ENTITY OBJECT IS USED' and is gone for Montana. "
            "Its row also stars School, but School's own row names only District, so School "
            "keeps District as its one parent."
        ),
    ),
    Entry("District", ("ReportingEntity",), year=False),
    Entry("School", ("District",), year=False),
    Entry("Calendar", ("School",), year=True),
    Entry("ScheduleStructure", ("Calendar",), year=True),
    Entry("StructureGradeLevel", ("ScheduleStructure",), year=True),
    Entry("CourseSection", ("Calendar",), year=True),
    Entry(
        "Day",
        ("ScheduleStructure",),
        year=True,
        why=(
            "Day's own row names PersonIdentity as its immediate parent, but ScheduleStructure's "
            "row marks Day* as its immediate child and PersonIdentity's child list omits Day. "
            "Two rows agree, and a calendar day belongs to a schedule structure, not a person: "
            "parent is ScheduleStructure, so Day's ancestors lack PersonIdentity."
        ),
    ),
    Entry("PersonIdentity", ("ScheduleStructure",), year=False),
    Entry("PersonIdentityNoStateIDOnly", ("ScheduleStructure",), year=False),
    Entry("Enrollment", PI, year=True),
    Entry("AttendanceBIEAbsentDays", ENR, year=True, editions=("BIE",)),
    Entry("AttendanceExactCount", ENR, year=True),
    Entry("AttendanceGroupKY", ENR, year=True, editions=("KY",)),
    Entry("AttendanceKYMinute", ENR, year=True, editions=("KY",)),
    Entry("AttendanceSDMinute", ENR, year=True, editions=("SD",)),
    Entry("CustomStudent", ENR, year=True),
    Entry("ESSKY", ENR, year=True, editions=("KY",)),
    Entry("FRYSCStatusKY", ENR, year=True, editions=("KY",)),
    Entry(
        "Graduation",
        ENR,
        year=True,
        other_years=False,
        why="A graduation closes a year: configured to sync for the current year only, never previous/next.",
    ),
    Entry("PreSchoolKY", ENR, year=True, editions=("KY",)),
    Entry(
        "Roster",
        ("StructureGradeLevel", "Enrollment"),
        year=True,
        why=(
            "Roster's Parent Objects column lists StructureGradeLevel, which is no ancestor of "
            "Enrollment; so StructureGradeLevel is a second immediate parent, although its own "
            "row says 'No dependent objects'. The Parent Objects column is the truth here."
        ),
    ),
    Entry("Title1KY", ENR, year=True, editions=("KY",)),
    Entry(
        "Evaluation",
        ENR,
        year=True,
        why=(
            "Evaluation has no row of its own; Enrollment's row lists it as an immediate child "
            "(Evaluation*). We keep it, with Enrollment as its parent."
        ),
    ),
    Entry(
        "TeamMember",
        ENR,
        year=True,
        why=(
            "TeamMember's own row names PersonIdentity, but Enrollment's row marks TeamMember* "
            "as its immediate child and PersonIdentity's child list omits it. Two rows agree: "
            "parent is Enrollment, so its ancestors gain Enrollment."
        ),
    ),
    Entry("Behavior", PI, year=True),
    Entry("CensusContactSummary", PI, year=False),
    Entry("ContactLog", PI, year=False),
    Entry("CTEDataME", PI, year=True, editions=("ME",)),
    Entry("Employment", PI, year=False),
    Entry("EmploymentAssignment", PI, year=True),
    Entry("EmploymentBackground", PI, year=False),
    Entry("EmploymentCredential", PI, year=False),
    Entry("Form", PI, year=True),
    Entry("FRYSCGroupProgramKY", PI, year=True, editions=("KY",)),
    Entry("FRYSCGroupStatusKY", ("PersonIdentity", "FRYSCGroupProgramKY"), year=True, editions=("KY",)),
    Entry("GiftedStatusKY", PI, year=True, editions=("KY",)),
    Entry(
        "HealthScreening",
        PI,
        year=False,
        why="Spelled 'Health Screening' in PersonIdentity's child list; every other row writes HealthScreening.",
    ),
    Entry("ImmCertificate", PI, year=False),
    Entry(
        "LEPKY",
        PI,
        year=True,
        editions=("KY",),
        why="Its own row spells it LepKY; all four child lists write LEPKY. LepKY is accepted as an alias.",
    ),
    Entry("MedicaidInsurance", PI, year=False),
    Entry("NASIS", PI, year=True, editions=("BIE",)),
    Entry("Plan", PI, year=True),
    Entry("PlanProgressReport", ("Plan",), year=True),
    Entry("POSEligibility", PI, year=True),
    Entry("ProcessMessage", PI, year=False),
    Entry("ProgramParticipation", PI, year=True),
    Entry("TEDSKY", PI, year=True, editions=("KY",)),
    Entry("Test", PI, year=True),
    Entry("TestScore", ("PersonIdentity", "Test"), year=True),
    Entry("Transportation", PI, year=True),
    Entry("Truancy", PI, year=True),
    Entry("VaccineShot", PI, year=False),
    Entry("CourseCode", (), year=False),
    Entry("ISEPResidentialCertification", (), year=True, editions=("BIE",)),
    Entry("ISEPResidentialVerification", (), year=True, editions=("BIE",)),
)

# Other spellings the article uses, accepted wherever a name is typed.
ALIASES: dict[str, str] = {
    "lepky": "LEPKY",
    "health screening": "HealthScreening",
}


def parents_map(entries: tuple[Entry, ...] = CATALOG) -> dict[str, tuple[str, ...]]:
    return {e.name: e.parents for e in entries}


def load_catalog(sync_object_model, parent_model, entries: tuple[Entry, ...] = CATALOG) -> None:
    """Create or update the catalog rows. Takes the model classes so a data
    migration can pass its historical models. A deployment's `enabled` choice
    is kept for rows that exist already."""
    rows = {}
    for e in entries:
        obj, created = sync_object_model.objects.get_or_create(
            name=e.name,
            defaults={
                "year_scoped": e.year,
                "syncs_other_years": e.other_years,
                "editions": ",".join(e.editions),
                "enabled": e.enabled,
                "note": e.why,
            },
        )
        if not created:
            obj.year_scoped, obj.syncs_other_years = e.year, e.other_years
            obj.editions, obj.note = ",".join(e.editions), e.why
            obj.save()
        rows[e.name] = obj
    parent_model.objects.filter(child__in=rows.values()).delete()
    parent_model.objects.bulk_create(
        parent_model(child=rows[e.name], parent=rows[p], position=i)
        for e in entries
        for i, p in enumerate(e.parents)
    )
