"""Loading a district's records, and creating districts: check_* validates and
authorises (raising core.errors.ResyncError or RightsError, changing nothing),
do_* writes. import_records and add_district call these; the API and the admin's
upload are to call the same ones, so a load is refused for the same reasons at
every door (and each record through resync.schemas, the one validation home).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import router, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import Busy, ResyncError
from core.parsers import _unstorable
from history.models import DISBatchHistory, StepStatus
from resync.models import District, DistrictRecord, School, State, SyncObject
from resync.schemas import Problem, RecordValidator, validator_for
from runner.engine import DISTRICT_READS

from . import staging
from .files import Unreadable
from .idset import IdSet
from .models import Load
from .rights import check_load_right

CODE = re.compile(r"[A-Za-z0-9_-]+")  # what a state or district code may hold
BATCH = 2000  # rows staged per statement: flat memory, few round trips
SHOWN = 100  # problems a result keeps to show; the rest are counted
# What a record is compared on: equal in all of them, it is unchanged and not written.
CONTENT = ("school_year", "parent_ids", "payload", "state_excluded")
# How long a load's merge waits for a running resync step that reads its records
# (a step of a large object runs for minutes), asking again every POLL seconds.
WAIT = 60.0
POLL = 0.5


# ---- Creating districts ----------------------------------------------------------------


def check_year_value(year: int) -> int:
    """A school year by its ending year: 2027 is 2026-27."""
    if not 1900 <= year <= 2999:
        raise ResyncError(
            f"School year {year} is not a year: give its ending year, as 2027 for 2026-27.", "year"
        )
    return year


def parse_school(text: str) -> tuple[str, str]:
    """NUMBER:NAME, as add_district's --school takes it."""
    number, sep, name = text.partition(":")
    number, name = number.strip(), name.strip()
    if not sep or not number or not name:
        raise ResyncError(f"A school is NUMBER:NAME, as 001:Adair High, not {text!r}.", "school")
    if len(number) > 16 or len(name) > 100:
        raise ResyncError(f"School {text!r}: a number has at most 16 characters, a name 100.", "school")
    return number, name


def do_add_district(
    state_code: str,
    code: str,
    name: str,
    year: int,
    state_name: str | None = None,
    edition: str | None = None,
    schools: Iterable[tuple[str, str]] = (),
) -> District:
    """Create the district (and its state when missing: its edition is its code unless
    given) with its schools, all or nothing. A district code already taken is refused,
    so running the same command twice changes nothing the second time."""
    check_year_value(year)
    for value, label, most in (
        (state_code, "state code", 8),
        (code, "district code", 16),
        (name, "name", 100),
    ):
        if not value.strip() or len(value) > most:
            raise ResyncError(
                f"A {label} has 1 to {most} characters, not {value!r}.", label.replace(" ", "_")
            )
    for value, label in ((state_code, "state code"), (code, "district code")):
        # A code is typed in commands and sits in URLs (district-records/<code>/…): a slash,
        # a space or a look-alike digit would make a district no door can name again.
        if not CODE.fullmatch(value):
            raise ResyncError(
                f"A {label} is ASCII letters, digits, '-' and '_', not {value!r}.", label.replace(" ", "_")
            )
    if edition is not None and len(edition) > 8:
        raise ResyncError(f"An edition has at most 8 characters, not {edition!r}.", "edition")
    schools = list(schools)
    numbers = [n for n, _ in schools]
    doubled = sorted({n for n in numbers if numbers.count(n) > 1})
    if doubled:
        raise ResyncError("A school number is given twice: " + ", ".join(doubled) + ".", "school")
    with transaction.atomic():
        if District.objects.filter(code=code).exists():
            raise ResyncError(f"District {code} exists already: nothing was changed.", "code")
        state, _ = State.objects.get_or_create(
            code=state_code,
            defaults={
                "name": state_name or state_code,
                "edition": state_code if edition is None else edition,
            },
        )
        district = District.objects.create(state=state, code=code, name=name, scope_year=year)
        School.objects.bulk_create(School(district=district, number=n, name=s) for n, s in schools)
    return district


# ---- Loading records -------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedLoad:
    """A load check_load allowed: into which district, object and year (None for an
    object not tied to a year), by whom, validated by which validator."""

    district: District
    sync_object: SyncObject
    year: int | None
    validator: RecordValidator
    user: User | None = None


@dataclass(frozen=True)
class RowProblem:
    """Why one row is refused: its line, its record id (None when it has none that
    reads), the field at fault ("" for the row as a whole) and the reason."""

    line: int
    record_id: int | None
    field: str
    message: str

    def __str__(self) -> str:
        record = "?" if self.record_id is None else self.record_id
        where = f", field {self.field}" if self.field else ""
        return f"line {self.line}, record {record}{where}: {self.message}"


@dataclass
class LoadResult:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0  # rows refused (with --skip-invalid: not loaded)
    problems: list[RowProblem] = field(default_factory=list)  # the first SHOWN
    problem_count: int = 0
    written: bool = False  # False: the load was refused and nothing changed
    kept: str = ""  # why a snapshot deleted nothing although it was loaded
    load: Load | None = None
    busy: bool = False  # refused only because a resync step kept reading: try again later


def check_load(
    district: District | str, obj_name: str, year: int | None, user: User | None = None
) -> CheckedLoad:
    """May records of `obj_name` be loaded into `district` (a District or its code) for
    `year`? A year-scoped object's year defaults to the district's scoped year and must
    be one it is configured for; an object not tied to a year takes none."""
    if isinstance(district, str):
        found = District.objects.select_related("state").filter(code=district).first()
        if found is None:
            raise ResyncError(
                f"No district with code {district!r}: add it first (manage.py add_district).", "district"
            )
        district = found
    if user is not None:
        check_load_right(user, district)
    obj = SyncObject.objects.filter(name=obj_name).first()
    if obj is None:
        raise ResyncError(f"No sync object named {obj_name!r}.", "object")
    if not obj.year_scoped and year is not None:
        raise ResyncError(f"{obj.name} is not tied to a school year: load it without a year.", "year")
    if obj.year_scoped:
        year = district.scope_year if year is None else year
        if year not in district.years:
            allowed = ", ".join(str(y) for y in sorted(district.years))
            raise ResyncError(
                f"School year {year} is not configured for district {district.code}: choose {allowed}.",
                "year",
            )
    offered = SyncObject.objects.offered(district, year or district.scope_year)
    if not offered.filter(pk=obj.pk).exists():
        raise ResyncError(f"{obj.name} is not offered to district {district.code}.", "object")
    return CheckedLoad(district, obj, year, validator_for(obj), user)


def wire_rows(checked: CheckedLoad, rows: Iterable[tuple[int, dict | Unreadable]], fmt: str):
    """A file's rows in the wire form: a CSV row typed by the schema, an NDJSON row as is."""
    if fmt != "csv":
        yield from rows
        return
    from_csv = checked.validator.from_csv
    for line, row in rows:
        yield line, row if isinstance(row, Unreadable) else from_csv(row)


def _record_id(row: dict) -> int | None:
    rid = row.get("record_id")
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


def do_load(
    checked: CheckedLoad,
    rows: Iterable[tuple[int, dict | Unreadable]],
    snapshot: bool = False,
    skip_invalid: bool = False,
    on_reject: Callable[[int, dict | None, list[RowProblem]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    dry_run: bool = False,
) -> LoadResult:
    """Load `rows` (`(line, wire row)`, as wire_rows gives them) into the district.

    Atomic unless `skip_invalid`: one problem anywhere and nothing is written; the
    result lists the first SHOWN problems and counts them all. With `skip_invalid` the
    valid rows are loaded and each refused one is passed to `on_reject`. A record
    whose content (CONTENT) did not change is not written, so it keeps its
    changed_at and the year-switch rule sees only real changes. `snapshot`: the
    district's records of that object (and year) the load did not hold are deleted,
    stamping records_deleted_at. `dry_run`: everything is checked and counted as a
    load would count it (what it would insert, update, leave and delete), then
    nothing is kept (`written` stays False): the admin's preview before a confirmed
    upload.

    The rows are checked and staged with no lock held (loads.staging); the merge
    runs in one short transaction under the District row lock, and only while no
    resync step that reads these records is running (it waits up to WAIT seconds,
    then refuses, naming the step): a step sees a load all or not at all.
    """
    result = LoadResult()
    validator, district, year = checked.validator, checked.district, checked.year
    seen = IdSet()  # valid record ids: a later duplicate is refused
    held = IdSet()  # ids of refused rows: a snapshot keeps their records

    def refuse(line: int, row: dict | None, problems: list[Problem]) -> None:
        rid = None if row is None else _record_id(row)
        if rid is not None:
            held.add(rid)
        found = [RowProblem(line, rid, p.field, p.message) for p in problems]
        result.rejected += 1
        result.problem_count += len(found)
        result.problems.extend(found[: SHOWN - len(result.problems)])
        if on_reject is not None and skip_invalid:
            on_reject(line, row, found)

    def writing() -> bool:
        return skip_invalid or result.problem_count == 0

    def refused() -> LoadResult:
        result.inserted = result.updated = result.unchanged = result.deleted = 0
        return result

    using = router.db_for_write(DistrictRecord)
    problems, since = validator.problems, 0
    with staging.Stage(using, keep_rows=skip_invalid and on_reject is not None) as stage:
        for line, row in rows:
            result.read += 1
            if isinstance(row, Unreadable):
                refuse(line, None, [Problem("", row.message)])
                continue
            unstorable = None if _plain(row) else _unstorable(row)
            if unstorable:
                refuse(line, row, [Problem("", unstorable.replace("the body", "the row"))])
                continue
            if year is not None and row.get("school_year") in (None, ""):
                row = {**row, "school_year": year}  # the load's year, for a row that names none
            found = problems(row)
            if not found:
                parts = validator.split(row)
                if year is not None and parts[1] != year:
                    found = [Problem("school_year", f"{parts[1]} is not this load's year, {year}")]
                elif parts[0] in seen:
                    found = [Problem("record_id", f"record {parts[0]} appears earlier in this file")]
            if found:
                refuse(line, row, found)
                continue
            seen.add(parts[0])
            if writing():  # an atomic load that refused a row stages nothing more
                stage.add(line, parts, row)
            since += 1
            if since >= BATCH:
                since = 0
                stage.flush()
                if on_progress is not None:
                    on_progress(result.read)
        if snapshot and not seen and not held:
            refuse(
                0,
                None,
                [Problem("", "the file holds no records: a snapshot of nothing would delete them all")],
            )
        if not writing():
            return refused()  # Atomic: one problem refuses the whole file, before any lock.
        stage.index()
        deadline = time.monotonic() + WAIT
        while True:
            with transaction.atomic(using=using):
                # The district's row lock, as do_request_resync and a step's claim take it:
                # no step starts while the merge runs, and none of those found running
                # is reading these records (see running_readers).
                District.objects.using(using).select_for_update().get(pk=district.pk)
                # A dry run keeps nothing, so it need not wait for the step.
                running = None if dry_run else running_readers(checked)
                if running is None:
                    _merge(checked, stage, result, refuse, writing, snapshot, dry_run, using)
                    return result
            if time.monotonic() >= deadline:
                refuse(0, None, [Problem("", _busy(running))])
                result.busy = True
                return refused()
            _wait(running)


def _merge(checked, stage, result, refuse, writing, snapshot, dry_run, using) -> None:
    """The merge, in the load's transaction: refusals by join, then the writes."""
    district, obj = checked.district, checked.sync_object
    refused = []
    for line, rid, problems, row in staging.refusals(stage, district.pk, obj.pk, checked.validator):
        refused.append(rid)
        if row is None:
            row = {"record_id": rid}  # enough for the problem to name its record
        refuse(line, row, problems)
    if not writing():
        result.inserted = result.updated = result.unchanged = result.deleted = 0
        return
    staging.skip(stage, refused, 1)
    now = timezone.now()
    result.inserted, result.updated = staging.write(stage, district.pk, obj.pk, now, _same)
    result.unchanged = stage.count - len(refused) - result.inserted - result.updated
    if snapshot and result.rejected:
        # A refused row may be a record the file meant to keep whose id could not be
        # read (bad bytes, a truncated line, an id that is no integer), or the file may
        # be another object's: deleting "what the file does not hold" would then
        # delete records the district still has. With --skip-invalid a snapshot loads
        # its valid rows and deletes nothing until a load has no refused row.
        result.kept = (
            f"Snapshot: nothing deleted, because {result.rejected} row(s) were refused; "
            "load the file again without refused rows to delete what it does not hold."
        )
    elif snapshot:
        result.deleted = staging.delete_missing(stage, district.pk, obj.pk, checked.year)
        if result.deleted:
            # As DistrictRecord's QuerySet delete stamps it: the next resync removes them at the state.
            District.objects.using(using).filter(pk=district.pk).update(records_deleted_at=now)
    if dry_run:
        transaction.set_rollback(True, using=using)
        return
    result.written = True
    result.load = Load.objects.using(using).create(
        district=district,
        sync_object=obj,
        school_year=checked.year,
        snapshot=snapshot,
        loaded_by=checked.user,
        **{
            k: getattr(result, k) for k in ("read", "inserted", "updated", "unchanged", "deleted", "rejected")
        },
    )


def running_readers(checked: CheckedLoad) -> DISBatchHistory | None:
    """A running resync step that reads the records this load writes, or None: a step
    of the object (and year), or of an object whose step reads it as it runs
    (runner.engine.DISTRICT_READS: a TestScore step reads Tests chunk by chunk)."""
    readers = [name for name, read in DISTRICT_READS.items() if checked.sync_object.name in read]
    own = Q(sync_object=checked.sync_object)
    if checked.year is not None:
        own &= Q(school_year=checked.year)
    return (
        DISBatchHistory.objects.filter(district=checked.district, status=StepStatus.RUNNING)
        .filter(own | Q(sync_object__name__in=readers))
        .select_related("sync_object")
        .order_by("pk")
        .first()
    )


def _busy(step: DISBatchHistory, undone: str = "nothing was written; load the file") -> str:
    return (
        f"resync step {step.pk} ({step.sync_object.name}, {step.school_year}) of request "
        f"{step.request_id} is still reading these records after {WAIT:g} s: {undone} "
        "again once it has ended."
    )


def _wait(step: DISBatchHistory) -> None:
    """Let the running step go on (the lock is released) before asking again."""
    time.sleep(POLL)


def _plain(row: dict) -> bool:
    """True for a row surely storable, as nearly every CSV row is: ASCII text without
    NUL, numbers, booleans, parents as integers. Any other row core.parsers._unstorable
    walks; this is only its fast path for the common row."""
    keys = "".join(row)
    if not keys.isascii() or "\x00" in keys:
        return False
    for value in row.values():
        kind = type(value)
        if kind is str:
            if not value.isascii() or "\x00" in value:
                return False
        elif kind is dict:
            for v in value.values():
                if type(v) is not int:
                    return False
            if not "".join(value).isascii():
                return False
        elif kind is float:
            if not math.isfinite(value):  # 1e400 reads as infinity: _unstorable words it
                return False
        elif kind is not int and kind is not bool and value is not None:
            return False
    return True


def _same(old: dict, new: dict) -> bool:
    """Equal payloads, a null value counting as absent (as the schema counts it): the
    same record sent as NDJSON with `"end_date": null` and as CSV with an empty cell."""
    return {k: v for k, v in old.items() if v is not None} == {k: v for k, v in new.items() if v is not None}


# ---- Deleting records by id (the load API's delete) ------------------------------------

MAX_IDS = 10_000  # ids one delete takes, as a batch upsert takes records


def check_record_ids(ids: object) -> list[int]:
    """The ids a delete names: a list of positive integers (within bigint), at most
    MAX_IDS; one named twice counts once. Anything else is refused, naming why."""
    if not isinstance(ids, list) or not ids:
        raise ResyncError("record_ids is a non-empty list of record ids.", "record_ids")
    if len(ids) > MAX_IDS:
        raise ResyncError(
            f"{len(ids)} record ids: one call deletes at most {MAX_IDS:,}; split the list.", "record_ids"
        )
    bad = [i for i in ids if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= 2**63 - 1]
    if bad:
        raise ResyncError(f"A record id is a positive integer, not {_shown(bad[0])}.", "record_ids")
    return list(dict.fromkeys(ids))


def _shown(value: object) -> str:
    import json  # here, not at the top: this section is appended to a module others edit

    return json.dumps(value)[:40]


@dataclass
class DeleteResult:
    read: int = 0  # distinct ids named
    deleted: int = 0
    unknown: list[int] = field(default_factory=list)  # the first SHOWN ids not found
    unknown_count: int = 0
    load: Load | None = None


def do_delete(checked: CheckedLoad, ids: list[int]) -> DeleteResult:
    """Delete the district's records of the object (and year) with these ids
    (check_record_ids), through DistrictRecord's QuerySet, which stamps the district's
    records_deleted_at as a snapshot's deletions do: the next resync removes them at the
    state. An id the district does not hold is reported, not refused (it may be gone
    already: a retried call deletes nothing the second time). A Load row records it."""
    result = DeleteResult(read=len(ids))
    scope = DistrictRecord.objects.filter(district=checked.district, sync_object=checked.sync_object)
    if checked.year is not None:
        scope = scope.filter(school_year=checked.year)
    using = router.db_for_write(DistrictRecord)
    deadline = time.monotonic() + WAIT
    while True:
        with transaction.atomic(using=using):
            # The district's row lock, as do_load's merge takes it: no step starts while
            # the delete runs, and none found running reads these records (a step reads
            # chunk by chunk: deleting under it would send the state part of the change).
            District.objects.using(using).select_for_update().get(pk=checked.district.pk)
            running = running_readers(checked)
            if running is None:
                return _delete(checked, ids, scope, result, using)
        if time.monotonic() >= deadline:
            raise Busy(_busy(running, "nothing was deleted; send the delete"), "record_ids")
        _wait(running)


def _delete(checked: CheckedLoad, ids: list[int], scope, result: DeleteResult, using: str) -> DeleteResult:
    """do_delete's writes, in its transaction under the District row lock."""
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        found = set(scope.filter(record_id__in=part).values_list("record_id", flat=True))
        missing = [i for i in part if i not in found]
        result.unknown_count += len(missing)
        result.unknown.extend(missing[: SHOWN - len(result.unknown)])
        if found:
            result.deleted += scope.filter(record_id__in=found).delete()[0]
    result.load = Load.objects.using(using).create(
        district=checked.district,
        sync_object=checked.sync_object,
        school_year=checked.year,
        loaded_by=checked.user,
        read=result.read,
        deleted=result.deleted,
    )
    return result
