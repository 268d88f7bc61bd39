"""Write the example district's CSV files: examples/district/ and examples/problems/.

Adair County (a Kentucky-like district, code 001) in school year 2027 (2026-27): four
schools, a calendar, schedule structure, grade levels and days for each, courses and
sections, 100 students, their enrollments, a week of attendance, three tests and their
scores. Every file is valid under the shipped field schemas (resync/field_catalog.py),
parents before children (ORDER, the order examples/load.sh loads them in).

A few records are loadable but not allowed at the state (NOT_ALLOWED: the rules of
README "What a resync does"), so a resync shows Errors. examples/problems/ holds one
file per kind of problem a load refuses; each is a district/ file with one thing
broken, and the district/ file is its fix.

Deterministic and stdlib only: `python examples/make_examples.py [OUT_DIR]` writes the
same bytes every time (tests/test_examples.py checks the committed files against it).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import sys
from pathlib import Path

YEAR = 2027  # school year 2026-27
DISTRICT = ("001", "Adair County")
# (record id, state school number, name, principal, grades)
SCHOOLS = (
    (1, "010", "Adair County High School", "Dana Wilson", ("09", "10", "11", "12")),
    (2, "020", "Adair County Middle School", "Mark Hadley", ("06", "07", "08")),
    (3, "030", "Adair County Elementary", "Lisa Coomer", ("PK", "KG", "01", "02")),
    (4, "040", "Adair Intermediate School", "Kevin Burton", ("03", "04", "05")),
)
FIRST_DAY, LAST_DAY = dt.date(2026, 8, 12), dt.date(2027, 5, 21)
HOLIDAYS = {
    dt.date(2026, 9, 7),  # Labor Day
    dt.date(2026, 11, 3),  # Election Day
    *(dt.date(2026, 11, 25) + dt.timedelta(days=i) for i in range(3)),  # Thanksgiving
    *(dt.date(2026, 12, 21) + dt.timedelta(days=i) for i in range(12)),  # winter break
    dt.date(2027, 1, 18),  # Martin Luther King Jr. Day
    *(dt.date(2027, 4, 5) + dt.timedelta(days=i) for i in range(5)),  # spring break
}
COURSES = (
    ("1001", "English I"),
    ("1002", "English II"),
    ("2001", "Algebra I"),
    ("2002", "Geometry"),
    ("3001", "Biology"),
    ("4001", "U.S. History"),
    ("5001", "Health and Physical Education"),
    ("6001", "Spanish I"),
    ("0601", "Grade 6 Mathematics"),
    ("0701", "Grade 7 Science"),
)
TEACHERS = ("R. Bault", "S. Grider", "T. Loy", "J. Feese", "A. Keltner", "M. Sinclair")
FIRST = (
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Elijah", "Sophia", "Mason", "Isabella", "Lucas",
    "Harper", "Carter", "Ella", "Wyatt", "Addison", "Grayson", "Kinsley", "Bentley", "Brooklyn",
    "Colton", "Paisley", "Easton", "Hadley", "Brantley", "Oakley",
)  # fmt: skip
LAST = (
    "Bryant", "Coffey", "Feese", "Grider", "Hadley", "Janes", "Keltner", "Loy", "Melson",
    "Pike", "Rexroat", "Sinclair", "Sparks", "Stotts", "Willis", "Wolford", "Burton", "Dohoney",
)  # fmt: skip
MIDDLE = ("Ann", "James", "Lee", "Marie", "Ray", "Grace", "", "", "")
AGE_AT_GRADE = {g: 5 + i for i, g in enumerate(("KG", "01", "02", "03", "04", "05", "06", "07"))}
AGE_AT_GRADE |= {"PK": 4, "08": 13, "09": 14, "10": 15, "11": 16, "12": 17}
STUDENTS = 100
WITHDRAWN = 17  # this student's enrollment ended in October: not actively enrolled
EXCLUDED_ENROLLMENT = 42  # marked state_excluded by the district
BENCHMARK_TEST = 3  # a district test with no state or national code

# The example records a resync refuses, with the reason (README "What a resync does").
NOT_ALLOWED: dict[str, dict[int, str]] = {
    "Enrollment": {EXCLUDED_ENROLLMENT: "state_excluded"},
    "AttendanceExactCount": {},  # filled below: every attendance of the excluded enrollment
    "TestScore": {},  # filled below
}

# The objects in load order, parents first (manage.py resync_plan --catalog).
ORDER = (
    "District",
    "School",
    "CourseCode",
    "Calendar",
    "CourseSection",
    "ScheduleStructure",
    "StructureGradeLevel",
    "Day",
    "PersonIdentity",
    "Enrollment",
    "AttendanceExactCount",
    "Test",
    "TestScore",
)


def _year(rows: list[dict]) -> list[dict]:
    return [{"record_id": r.pop("record_id"), "school_year": YEAR, **r} for r in rows]


def build() -> dict[str, list[dict]]:
    """Every object's rows, as CSV rows (column -> value), in ORDER."""
    rnd = random.Random(2027)
    out: dict[str, list[dict]] = {}
    out["District"] = [{"record_id": 1, "name": DISTRICT[1], "code": DISTRICT[0]}]
    out["School"] = [
        {"record_id": rid, "parent:District": 1, "name": name, "number": number, "principal": head}
        for rid, number, name, head, _ in SCHOOLS
    ]
    out["CourseCode"] = [{"record_id": i, "code": c, "title": t} for i, (c, t) in enumerate(COURSES, 1)]
    out["Calendar"] = _year(
        [
            {
                "record_id": rid,
                "parent:School": rid,
                "name": f"2026-27 {name}",
                "start_date": FIRST_DAY,
                "end_date": LAST_DAY,
            }
            for rid, _, name, _, _ in SCHOOLS
        ]
    )
    sections, n = [], 0
    for calendar in (1, 2):  # the high and the middle school schedule sections
        for section in range(1, 6):
            n += 1
            sections.append(
                {
                    "record_id": n,
                    "parent:Calendar": calendar,
                    "section": section,
                    "teacher": TEACHERS[(n - 1) % len(TEACHERS)],
                }
            )
    out["CourseSection"] = _year(sections)
    out["ScheduleStructure"] = _year(
        [{"record_id": rid, "parent:Calendar": rid, "name": "Traditional"} for rid, *_ in SCHOOLS]
    )
    grades, n = [], 0
    for rid, *_, served in SCHOOLS:
        for grade in served:
            n += 1
            grades.append({"record_id": n, "parent:ScheduleStructure": rid, "grade": grade})
    out["StructureGradeLevel"] = _year(grades)
    days, n, day = [], 0, FIRST_DAY
    while day <= LAST_DAY:
        if day.weekday() < 5:
            for rid, *_ in SCHOOLS:
                n += 1
                days.append(
                    {
                        "record_id": n,
                        "parent:ScheduleStructure": rid,
                        "date": day,
                        "instruction": "false" if day in HOLIDAYS else "true",
                    }
                )
        day += dt.timedelta(days=1)
    out["Day"] = _year(days)

    people, enrollments, attendance = [], [], []
    grade_of: dict[int, str] = {}
    all_grades = [(rid, g) for rid, *_, served in SCHOOLS for g in served]
    for i in range(1, STUDENTS + 1):
        school, grade = all_grades[(i - 1) % len(all_grades)]
        grade_of[i] = grade
        born = dt.date(YEAR - 1 - AGE_AT_GRADE[grade], 1, 1) + dt.timedelta(days=rnd.randrange(365))
        people.append(
            {
                "record_id": i,
                "parent:ScheduleStructure": school,
                "first": rnd.choice(FIRST),
                "last": rnd.choice(LAST),
                "middle": rnd.choice(MIDDLE),
                "birth_date": born,
                "state_id": f"{1_000_200_000 + i * 37:010d}",
            }
        )
        enrollments.append(
            {
                "record_id": i,
                "state_excluded": "true" if i == EXCLUDED_ENROLLMENT else "",
                "parent:PersonIdentity": i,
                "grade": grade,
                "start_date": FIRST_DAY,
                "end_date": dt.date(2026, 10, 16) if i == WITHDRAWN else "",
                "service_type": "S" if i % 23 == 0 else "P",
            }
        )
        for d in range(5):  # the first week: minutes present each day
            rid = (i - 1) * 5 + d + 1
            minutes = 0 if rnd.random() < 0.06 else rnd.choice((360, 375, 390, 405, 405, 405))
            attendance.append({"record_id": rid, "parent:Enrollment": i, "value": minutes})
            if i == EXCLUDED_ENROLLMENT:
                NOT_ALLOWED["AttendanceExactCount"][rid] = "parent_missing"
    out["PersonIdentity"] = people
    out["Enrollment"] = _year(enrollments)
    out["AttendanceExactCount"] = _year(attendance)

    # A Test's parent is a PersonIdentity (the catalog): the student who holds the
    # test's record in this SIS, here the first student of the grade it is for.
    out["Test"] = _year(
        [
            {
                "record_id": 1,
                "parent:PersonIdentity": 1,
                "name": "KSA Reading Grade 10",
                "state_code": "KSA-RD10",
                "national_code": "",
                "published": "true",
                "end_year": YEAR,
                "district_locked": "false",
            },
            {
                "record_id": 2,
                "parent:PersonIdentity": 1,
                "name": "ACT",
                "state_code": "",
                "national_code": "ACT",
                "published": "true",
                "end_year": YEAR,
                "district_locked": "false",
            },
            {
                "record_id": BENCHMARK_TEST,
                "parent:PersonIdentity": 1,
                "name": "Adair Fall Reading Benchmark",
                "state_code": "",
                "national_code": "",
                "published": "false",
                "end_year": YEAR,
                "district_locked": "false",
            },
        ]
    )
    scores, n = [], 0
    for i in range(1, STUDENTS + 1):
        tests = {"10": (1, 3), "11": (2,), "12": (2,)}.get(grade_of[i], ())
        for test in tests:
            n += 1
            score = {1: rnd.randrange(180, 260), 2: rnd.randrange(14, 34), 3: rnd.randrange(1, 100)}[test]
            when = {1: dt.date(2027, 4, 20), 2: dt.date(2027, 3, 9), 3: dt.date(2026, 9, 22)}[test]
            scores.append(
                {
                    "record_id": n,
                    "parent:PersonIdentity": i,
                    "parent:Test": test,
                    "date": when,
                    "score": score,
                }
            )
            if test == BENCHMARK_TEST:
                NOT_ALLOWED["TestScore"][n] = "test_no_code"
            elif i == WITHDRAWN:
                NOT_ALLOWED["TestScore"][n] = "not_enrolled"
    out["TestScore"] = _year(scores)
    assert WITHDRAWN in {s["parent:PersonIdentity"] for s in scores}, "the withdrawn student has a score"
    return out


def problems(rows: dict[str, list[dict]]) -> dict[str, tuple[str, list[dict]]]:
    """One file per kind of problem: name -> (object, rows). Each is the district's file
    with one thing broken; the README's walkthrough says what each refusal looks like."""

    def changed(obj: str, index: int, **values) -> list[dict]:
        copy = [dict(r) for r in rows[obj]]
        copy[index].update(values)
        return copy

    unknown = [dict(r, nickname="") for r in rows["PersonIdentity"]]
    unknown[4]["nickname"] = "Bubba"
    parent_key = [
        {("parent:District" if k == "parent:School" else k): v for k, v in r.items()}
        for r in rows["Calendar"]
    ]
    return {
        "Enrollment.bad-date.csv": ("Enrollment", changed("Enrollment", 11, start_date="2026-08-32")),
        "PersonIdentity.unknown-field.csv": ("PersonIdentity", unknown),
        "CourseCode.missing-required-field.csv": ("CourseCode", changed("CourseCode", 3, title="")),
        "Calendar.bad-parent-key.csv": ("Calendar", parent_key),
        "PersonIdentity.state-locked-field.csv": (
            "PersonIdentity",
            changed("PersonIdentity", 6, state_id="9999999999"),
        ),
        "TestScore.duplicate-id.csv": (
            "TestScore",
            rows["TestScore"][:9] + [dict(rows["TestScore"][2])] + rows["TestScore"][9:],
        ),
    }


def not_allowed() -> dict[str, dict[int, str]]:
    """NOT_ALLOWED, filled: object -> {record id: the reason the resync gives}."""
    build()
    return NOT_ALLOWED


def as_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write(out: Path) -> None:
    rows = build()
    (out / "district").mkdir(parents=True, exist_ok=True)
    (out / "problems").mkdir(parents=True, exist_ok=True)
    for obj in ORDER:
        (out / "district" / f"{obj}.csv").write_text(as_csv(rows[obj]), encoding="utf-8")
    for name, (_obj, broken) in problems(rows).items():
        (out / "problems" / name).write_text(as_csv(broken), encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
