"""Which records may reach the state: pure checks over one chunk, no I/O.

The engine gathers what the checks need for a whole chunk in a few queries
(the parents present at the state, the tests scored, the students enrolled)
and hands it over as a Context; each record is then judged in memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import TextChoices


class Reason(TextChoices):
    """Why a record may not reach the state: the Error Log's reason. Defined with the
    rules that decide it; importing TextChoices needs no settings or app registry."""

    STATE_EXCLUDED = "state_excluded", "State-excluded record"
    PARENT_MISSING = "parent_missing", "Parent record not at the state"
    TEST_NO_CODE = "test_no_code", "Test has no state or national code"
    TEST_UNPUBLISHED = "test_unpublished", "Test not published from the State Edition"
    TEST_NO_DATE = "test_no_date", "No score date and no test end year: test blocked"
    OUT_OF_SCOPE = "out_of_scope", "Score date or test end year outside the scope year"
    TEST_LOCKED = "test_locked", "Test is district-locked"
    NOT_ENROLLED = "not_enrolled", "Student not actively enrolled in the district"
    # The record's content is not what its fields must hold (a parent id that is
    # not a whole number, parent ids or a payload that is not a JSON object, a
    # score date that is not a date): that record's error, never its step's.
    MALFORMED = "malformed", "Malformed record"


# What to fix in the SIS for each reason: the Error Log, its summary and the API show it.
# Beside the reasons so a new one cannot ship without its help (tests/test_error_summary.py).
REASON_HELP: dict[str, str] = {
    Reason.STATE_EXCLUDED: "The record is marked state-excluded in the SIS: clear the flag on the record "
    "if it should reach the state; otherwise nothing to fix.",
    Reason.PARENT_MISSING: "The record's parent is not at the state: fix the parent's own errors first "
    "(see its rows), then resend with Check Dependencies.",
    Reason.TEST_NO_CODE: "The test has no state or national code: set one in the test's setup.",
    Reason.TEST_UNPUBLISHED: "The test is not published from the State Edition: publish it from the "
    "State Edition's test setup.",
    Reason.TEST_NO_DATE: "A score of the test has no date and the test has no end year: enter the score's "
    "date, or set the test's end year in its setup.",
    Reason.OUT_OF_SCOPE: "The score's date (or the test's end year) is outside the school year: correct the "
    "date, or resync the school year it belongs to.",
    Reason.TEST_LOCKED: "The test is district-locked: clear District Locked in the test's setup if the "
    "state should receive its scores.",
    Reason.NOT_ENROLLED: "The student has no active enrollment in the district: check the student's "
    "enrollment (start and end dates) in the SIS.",
    Reason.MALFORMED: "The record holds a value its field may not (the message names the field): correct "
    "it in the SIS, or in the file it was loaded from.",
}


@dataclass(frozen=True)
class Record:
    record_id: int
    parent_ids: Mapping[str, Any]
    payload: Mapping[str, Any]
    state_excluded: bool = False


@dataclass(frozen=True)
class Context:
    object_name: str
    parents: tuple[str, ...]
    school_year: int
    present: Mapping[str, set[int]] = field(default_factory=dict)  # parent object -> ids at the state
    tests: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)  # Test id -> payload
    blocked_tests: set[int] = field(default_factory=set)
    enrolled: set[int] = field(default_factory=set)  # PersonIdentity ids actively enrolled


def year_bounds(school_year: int) -> tuple[dt.date, dt.date]:
    """School year 2027 runs from 1 July 2026 to 30 June 2027."""
    return dt.date(school_year - 1, 7, 1), dt.date(school_year, 6, 30)


# A record id is a signed 64-bit integer at both stores (bigint).
ID_LIMIT = 2**63


class Malformed(ValueError):
    """A record's content is not what its fields must hold; the message names the field."""


def whole_number(value: Any) -> int | None:
    """`value` as a record id: an integer, or ASCII digits as text (SQLite and some SIS
    exports hand ids over as "12"); None for anything else (null, a boolean, a
    fraction, other text, a list, an object, a number beyond bigint)."""
    if type(value) is int:
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdecimal():
        number = int(value)
    else:
        return None
    return number if -ID_LIMIT <= number < ID_LIMIT else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parent_id(parent_ids: Mapping[str, Any], parent: str) -> int | None:
    """The id `parent_ids` names for `parent`; None when it names none (null or no key).
    Raises Malformed when it names something that is not a record id."""
    value = parent_ids.get(parent)
    if value is None:
        return None
    number = whole_number(value)
    if number is None:
        raise Malformed(f"parent {parent} id {_shown(value)} is not a whole number")
    return number


def score_date(payload: Mapping[str, Any]) -> dt.date | None:
    """A score's date (YYYY-MM-DD, a time after it allowed); None when it has none.
    Raises Malformed when it holds something else."""
    value = payload.get("date")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Malformed(f"score date {_shown(value)} is not text")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise Malformed(f"score date {_shown(value)} is not a date (YYYY-MM-DD)") from None


def check(record: Record, ctx: Context) -> tuple[str, str] | None:
    """Return (reason, message) when the record may not reach the state, else None.

    Never raises on a record's content: whatever a district stored, a record
    that is not what its fields must hold is that record's own error
    (Reason.MALFORMED, naming the field), and the rest of the step goes on.
    """
    if record.state_excluded:
        return Reason.STATE_EXCLUDED, f"{ctx.object_name} {record.record_id} is state-excluded."
    try:
        return _check(record, ctx)
    except Malformed as e:
        return Reason.MALFORMED, f"{ctx.object_name} {record.record_id}: {e}."


def _check(record: Record, ctx: Context) -> tuple[str, str] | None:
    if not isinstance(record.parent_ids, Mapping):
        raise Malformed(f"parent_ids {_shown(record.parent_ids)} is not a JSON object")
    if not isinstance(record.payload, Mapping):
        raise Malformed(f"payload {_shown(record.payload)} is not a JSON object")
    # Every field is read before any rule is applied: a malformed record says so
    # whichever rule would have refused it first.
    pids = {parent: parent_id(record.parent_ids, parent) for parent in ctx.parents}
    if ctx.object_name == "TestScore":
        score = (
            parent_id(record.parent_ids, "Test"),
            parent_id(record.parent_ids, "PersonIdentity"),
            score_date(record.payload),
        )
    for parent in ctx.parents:
        pid = pids[parent]
        if pid is None or pid not in ctx.present.get(parent, ()):
            return (
                Reason.PARENT_MISSING,
                f"{ctx.object_name} {record.record_id}: parent {parent} {pid} is not at the state.",
            )
    if ctx.object_name == "TestScore":
        return check_score(record, ctx, *score)
    return None


def check_score(
    record: Record, ctx: Context, test_id: int | None, person: int | None, when: dt.date | None
) -> tuple[str, str] | None:
    """The article's six Test Scores Batch Sync Requirements, in its order.
    `test_id`, `person` and `when` are the record's own, already read (check)."""
    test = ctx.tests.get(test_id, {}) if test_id is not None else {}
    if not isinstance(test, Mapping):  # the Test's own step errors it
        test = {}
    label = f"TestScore {record.record_id} (test {test_id or 0})"
    if not (test.get("state_code") or test.get("national_code")):
        return Reason.TEST_NO_CODE, f"{label}: the test has no state or national code."
    if not test.get("published"):
        return Reason.TEST_UNPUBLISHED, f"{label}: the test is not published from the State Edition."
    if test_id in ctx.blocked_tests:
        return (
            Reason.TEST_NO_DATE,
            f"{label}: a score of this test has no date and the test has no end year; its sync is blocked.",
        )
    start, end = year_bounds(ctx.school_year)
    if when is not None:
        if not start <= when <= end:
            return (
                Reason.OUT_OF_SCOPE,
                f"{label}: score date {when} is outside school year {ctx.school_year}.",
            )
    elif test.get("end_year") != ctx.school_year:
        return (
            Reason.OUT_OF_SCOPE,
            f"{label}: test end year {test.get('end_year')} is not school year {ctx.school_year}.",
        )
    if test.get("district_locked"):
        return Reason.TEST_LOCKED, f"{label}: the test is district-locked."
    if person is None or person not in ctx.enrolled:
        return Reason.NOT_ENROLLED, f"{label}: student {person} is not actively enrolled in the district."
    return None
