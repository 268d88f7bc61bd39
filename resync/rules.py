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

from history.models import Reason


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


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def check(record: Record, ctx: Context) -> tuple[str, str] | None:
    """Return (reason, message) when the record may not reach the state, else None."""
    if record.state_excluded:
        return Reason.STATE_EXCLUDED, f"{ctx.object_name} {record.record_id} is state-excluded."
    for parent in ctx.parents:
        pid = record.parent_ids.get(parent)
        if pid is None or int(pid) not in ctx.present.get(parent, ()):
            return (
                Reason.PARENT_MISSING,
                f"{ctx.object_name} {record.record_id}: parent {parent} {pid} is not at the state.",
            )
    if ctx.object_name == "TestScore":
        return check_score(record, ctx)
    return None


def check_score(record: Record, ctx: Context) -> tuple[str, str] | None:
    """The article's six Test Scores Batch Sync Requirements, in its order."""
    test_id = int(record.parent_ids.get("Test", 0))
    test = ctx.tests.get(test_id, {})
    label = f"TestScore {record.record_id} (test {test_id})"
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
    when = _date(record.payload.get("date"))
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
    person = record.parent_ids.get("PersonIdentity")
    if person is None or int(person) not in ctx.enrolled:
        return Reason.NOT_ENROLLED, f"{label}: student {person} is not actively enrolled in the district."
    return None
