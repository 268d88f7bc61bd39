"""Demo data: a realistic state with districts, schools and their SIS records,
and a known share of records planted to fail. The generator counts what it
plants, so tests and the benchmark know the Processed and Errors a full resync
must report for each object.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import transaction

from resync.catalog import CATALOG
from resync.models import District, DistrictRecord, School, State, SyncObject

YEARLY = {e.name: e.year for e in CATALOG}

SIZES = {  # districts, students per district
    "tiny": (1, 30),
    "small": (2, 120),
    "medium": (3, 800),
    "large": (6, 9500),  # about 1,070,000 records
}

# Objects under PersonIdentity or Enrollment that every demo student may have,
# with how many records per student (on average).
PER_PERSON = {
    "Behavior": 0.2,
    "ContactLog": 0.3,
    "HealthScreening": 0.3,
    "ImmCertificate": 0.2,
    "VaccineShot": 0.5,
    "Transportation": 0.3,
    "ProgramParticipation": 0.2,
    "LEPKY": 0.1,
    "GiftedStatusKY": 0.1,
}
PER_ENROLLMENT = {"AttendanceExactCount": 8, "CustomStudent": 0.5, "Title1KY": 0.2, "AttendanceKYMinute": 2}


@dataclass
class Expected:
    """What a full resync of one district must count, per object."""

    processed: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    def add(self, obj: str, failing: bool = False) -> None:
        self.processed[obj] += 1
        if failing:
            self.errors[obj] += 1


@dataclass
class Row:
    obj: str
    record_id: int
    parents: dict
    payload: dict
    year: int | None
    excluded: bool = False


class Builder:
    """Yields one district's records, parents before children, and counts them."""

    def __init__(self, district: District, students: int, rng: random.Random):
        self.d, self.n, self.rng = district, students, rng
        self.year = district.scope_year
        self.expected = Expected()
        self.ids: Counter = Counter()

    def row(self, obj: str, parents: dict, payload: dict, *, excluded=False, failing=False) -> Row:
        self.ids[obj] += 1
        self.expected.add(obj, failing or excluded)
        return Row(obj, self.ids[obj], parents, payload, self.year if YEARLY[obj] else None, excluded)

    def day(self, i: int) -> str:
        return (dt.date(self.year - 1, 8, 15) + dt.timedelta(days=i)).isoformat()

    def rows(self) -> Iterator[Row]:
        rng, year = self.rng, self.year
        district = self.row("District", {}, {"name": self.d.name, "code": self.d.code})
        yield district
        did = {"District": district.record_id}
        yield self.row("CourseCode", {}, {"code": "MATH1", "title": "Algebra I"})
        structures, levels, people = [], [], []
        for school in self.d.schools.order_by("number"):
            s = self.row("School", did, {"name": school.name, "number": school.number})
            yield s
            cal = self.row("Calendar", {"School": s.record_id}, {"name": f"{year - 1}-{year} {school.name}"})
            yield cal
            ss = self.row("ScheduleStructure", {"Calendar": cal.record_id}, {"name": "Main"})
            yield ss
            structures.append(ss.record_id)
            for grade in ("09", "10", "11", "12"):
                g = self.row("StructureGradeLevel", {"ScheduleStructure": ss.record_id}, {"grade": grade})
                yield g
                levels.append(g.record_id)
            for i in range(0, 180, 6):
                yield self.row("Day", {"ScheduleStructure": ss.record_id}, {"date": self.day(i)})
            for i in range(10):
                yield self.row("CourseSection", {"Calendar": cal.record_id}, {"section": i + 1})
        # Planted: a state-excluded calendar and grade level (no children hang off them).
        yield self.row("Calendar", {"School": 1}, {"name": "Summer camp"}, excluded=True)
        yield self.row(
            "StructureGradeLevel", {"ScheduleStructure": structures[0]}, {"grade": "PK"}, excluded=True
        )

        ended = set(rng.sample(range(self.n), max(1, self.n // 100)))
        enrollments = []
        for i in range(self.n):
            p = self.row(
                "PersonIdentity",
                {"ScheduleStructure": rng.choice(structures)},
                {"first": f"Student{i}", "last": rng.choice(["Lee", "Diaz", "Smith", "Nguyen", "Brown"])},
            )
            yield p
            people.append(p.record_id)
            e = self.row(
                "Enrollment",
                {"PersonIdentity": p.record_id},
                {
                    "grade": rng.choice(["09", "10", "11", "12"]),
                    "end_date": self.day(60) if i in ended else None,
                },
            )
            yield e
            enrollments.append((e.record_id, p.record_id, i in ended))
        # Planted: state-excluded enrollments (about 1%), with no records under them.
        for pid in rng.sample(people, max(1, self.n // 100)):
            yield self.row(
                "Enrollment", {"PersonIdentity": pid}, {"grade": "12", "end_date": None}, excluded=True
            )

        for eid, _pid, _ended in enrollments:
            for obj, rate in PER_ENROLLMENT.items():
                for _ in range(self._count(rate)):
                    yield self.row(obj, {"Enrollment": eid}, {"value": rng.randint(0, 400)})
            for _ in range(3):
                yield self.row("Roster", {"Enrollment": eid, "StructureGradeLevel": rng.choice(levels)}, {})
        for pid in people:
            for obj, rate in PER_PERSON.items():
                for _ in range(self._count(rate)):
                    yield self.row(obj, {"PersonIdentity": pid}, {"note": "demo"})
        for pid in rng.sample(people, max(1, self.n // 10)):
            plan = self.row("Plan", {"PersonIdentity": pid}, {"kind": "IEP"})
            yield plan
            yield self.row("PlanProgressReport", {"Plan": plan.record_id}, {"period": 1})
        yield from self.tests(people, enrollments)

    def _count(self, rate: float) -> int:
        whole = int(rate)
        return whole + (1 if self.rng.random() < rate - whole else 0)

    def tests(self, people: list[int], enrollments: list[tuple]) -> Iterator[Row]:
        """Good tests plus one test breaking each rule, and scores for each."""
        rng, year = self.rng, self.year
        owner = people[0]
        good = {"state_code": "KPREP", "national_code": "", "published": True, "end_year": year}
        kinds = {
            "good1": (good, None),
            "good2": (dict(good, state_code="", national_code="ACT"), None),
            "no_code": (dict(good, state_code=""), "test_no_code"),
            "unpublished": (dict(good, published=False), "test_unpublished"),
            "blocked": (dict(good, end_year=None), "test_no_date"),
            "locked": (dict(good, district_locked=True), "test_locked"),
        }
        enrolled = [(pid, ended) for _eid, pid, ended in enrollments]
        for name, (payload, failure) in kinds.items():
            test = self.row("Test", {"PersonIdentity": owner}, dict(payload, name=name))
            yield test
            scores = max(4, self.n // 5) if failure is None else max(2, self.n // 50)
            for k in range(scores):
                pid, ended = rng.choice(enrolled)
                date = None if (failure == "test_no_date" and k == 0) else self.day(rng.randint(0, 250))
                if failure is None and k % 25 == 1:
                    date = self.day(-200)  # planted: last school year
                reason = failure or ("out_of_scope" if date == self.day(-200) else None)
                if reason is None and ended:
                    reason = "not_enrolled"
                yield self.row(
                    "TestScore",
                    {"PersonIdentity": pid, "Test": test.record_id},
                    {"date": date, "score": rng.randint(1, 36)},
                    failing=reason is not None,
                )


def build_state(size: str, seed: int = 2027, scope_year: int = 2027) -> tuple[State, list[District]]:
    """Create the demo state, its districts and schools (records come from load_district)."""
    count, _students = SIZES[size]
    state, _ = State.objects.update_or_create(
        code="KY", defaults={"name": "Commonwealth Department of Education", "edition": "KY"}
    )
    names = [
        "Adair County",
        "Boone County",
        "Clark County",
        "Daviess County",
        "Elliott County",
        "Fayette County",
    ]
    districts = []
    for i in range(count):
        d, _ = District.objects.update_or_create(
            code=f"{101 + i}",
            defaults={
                "state": state,
                "name": names[i % len(names)],
                "scope_year": scope_year,
                "sync_previous_year": i == 0,
                "sync_next_year": i == 1,
            },
        )
        schools = max(2, _students // 400)
        for s in range(schools):
            School.objects.update_or_create(
                district=d, number=f"{s + 1:03d}", defaults={"name": f"{d.name} School {s + 1}"}
            )
        districts.append(d)
    return state, districts


def load_district(
    district: District,
    students: int,
    seed: int = 2027,
    batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> Expected:
    """Replace the district's records with generated ones; return what a full resync must count."""
    ids = dict(SyncObject.objects.values_list("name", "id"))
    builder = Builder(district, students, random.Random(f"{seed}-{district.code}"))
    with transaction.atomic():
        DistrictRecord.objects.filter(district=district).delete()
        buffer: list[DistrictRecord] = []
        for r in builder.rows():
            buffer.append(
                DistrictRecord(
                    district=district,
                    sync_object_id=ids[r.obj],
                    school_year=r.year,
                    record_id=r.record_id,
                    parent_ids=r.parents,
                    payload=r.payload,
                    state_excluded=r.excluded,
                )
            )
            if len(buffer) >= batch:
                DistrictRecord.objects.bulk_create(buffer)
                if progress:
                    progress(len(buffer))
                buffer = []
        DistrictRecord.objects.bulk_create(buffer)
        if progress:
            progress(len(buffer))
    return builder.expected
