"""How a resync runs fast without changing what it does: the state upsert's two
paths write the same state, a step's state side stays atomic, validation stays
set-based, and a layer's biggest step is queued first.

RESYNC_WRITE=sql stages each chunk and upserts it in one statement: with COPY
on PostgreSQL (CI), with one executemany on SQLite, where the comparison below
therefore checks the staging SQL and the upsert but not COPY's text escaping.
"""

import pytest
from django.db import connections

from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync.models import District, DistrictRecord, StateRecord
from runner import engine, lifecycle
from tool import actions

from .conftest import BOTH, COMMITTED, add, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose steps a worker runs, or whose step runs while another connection writes.

# What COPY's text format and JSON quoting could get wrong.
AWKWARD = {
    "title": 'back\\slash, tab\t, newline\n, "quotes", \\N, é ☃ 𝄞',
    "nested": {"list": [1, None, 2.5, True], "empty": {}},
    "n": 2**53,
}


def resync(district, objects=None, check_dependencies=False):
    return actions.do_request_resync(actions.check_resync(district, None, objects, check_dependencies))


def outcome(district, request) -> dict:
    steps = {s.pk for s in DISBatchHistory.objects.filter(request=request)}
    rows = StateRecord.objects.filter(district_code=district.code)
    assert {r.step for r in rows} <= steps  # every row stamped by this run
    return {
        "state": {(r.sync_object, r.record_id): (r.school_year, r.payload, r.parent_ids) for r in rows},
        "steps": {
            s.sync_object.name: (s.processed, s.errors, s.status)
            for s in DISBatchHistory.objects.filter(request=request).select_related("sync_object")
        },
        "errors": sorted(
            ErrorLog.objects.filter(step__request=request).values_list(
                "sync_object__name", "record_id", "reason"
            )
        ),
    }


@COMMITTED
def test_it_writes_the_same_state_through_sql_as_through_the_orm(demo_district, queue, settings):
    district, expected = demo_district
    add(district, "CourseCode", 900, payload=AWKWARD)
    renamed = add(district, "CourseCode", 901, payload={"title": "before"})
    runs = {}
    # On PostgreSQL, "sql" moves all but the scores in bulk (runner.bulk), "chunks" in Python.
    for mode in ("orm", "chunks", "sql"):
        settings.RESYNC_WRITE = "orm" if mode == "orm" else "sql"
        settings.RESYNC_BULK = mode != "chunks"
        StateRecord.objects.filter(district_code=district.code).delete()
        first = resync(district)
        run_queue()
        after_first = outcome(district, first)
        # Before the reload: the district renames one record and no longer has another.
        StateRecord.objects.create(
            district_code=district.code,
            sync_object="CourseCode",
            record_id=999,
            step=0,
            synced_at=first.created_at,
        )
        DistrictRecord.objects.filter(pk=renamed.pk).update(payload={"title": "after"})
        reload = resync(district)
        run_queue()
        DistrictRecord.objects.filter(pk=renamed.pk).update(payload={"title": "before"})
        runs[mode] = after_first, outcome(district, reload)

    assert runs["sql"] == runs["orm"] == runs["chunks"]
    first, reload = runs["sql"]
    assert first["state"][("CourseCode", 900)] == (None, AWKWARD, {})
    assert reload["state"][("CourseCode", 901)][1] == {"title": "after"}
    assert ("CourseCode", 999) not in reload["state"]
    assert first["steps"]["TestScore"][:2] == (expected.processed["TestScore"], expected.errors["TestScore"])
    sent = sum(p - e for p, e, _s in first["steps"].values())
    assert len(first["state"]) == sent


@COMMITTED
def test_it_rolls_the_whole_state_side_back_when_the_upsert_fails(
    district, queue, settings, monkeypatch, python_path
):
    chain(district)
    resync(district, ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity"])
    run_queue()
    for rid in range(2, 6):
        add(district, "PersonIdentity", rid, {"ScheduleStructure": 1})
    settings.RESYNC_CHUNK = 2
    monkeypatch.setattr(engine, "WRITE_ROWS", 2)  # one write per chunk
    real, calls = engine.writer, []

    def failing_writer(step):
        upsert = real(step)
        write = upsert.write

        def write_then_fail(pieces, now):
            calls.append(len(pieces))
            if len(calls) == 2:
                raise RuntimeError("disk full")
            write(pieces, now)

        upsert.write = write_then_fail
        return upsert

    monkeypatch.setattr(engine, "writer", failing_writer)
    request = resync(district, ["PersonIdentity"])
    run_queue()
    step = DISBatchHistory.objects.get(request=request)
    assert calls == [1, 1]  # the first chunk was written, then the second failed
    assert step.status == StepStatus.FAILED and "disk full" in step.message
    assert (step.processed, step.errors) == (0, 0)
    # The first chunk's upsert went with the rest: the state holds the one person synced before.
    assert list(
        StateRecord.objects.filter(sync_object="PersonIdentity").values_list("record_id", flat=True)
    ) == [1]


@COMMITTED
def test_it_judges_a_chunk_in_the_same_number_of_queries_whatever_its_size(
    demo_district, queue, settings, monkeypatch
):
    district, _expected = demo_district
    resync(district)
    run_queue()
    settings.RESYNC_CHUNK = 10_000  # one chunk either way
    monkeypatch.setattr(engine, "PROGRESS_SECONDS", 3600)  # no progress write in between, however slow

    def statements(extra_scores: int) -> int:
        test = DistrictRecord.objects.get(district=district, sync_object__name="Test", payload__name="good1")
        people = DistrictRecord.objects.filter(district=district, sync_object__name="PersonIdentity")
        for i, person in enumerate(people[:extra_scores]):
            add(
                district,
                "TestScore",
                10_000 + i,
                {"PersonIdentity": person.record_id, "Test": test.record_id},
                {"date": "2026-09-01", "score": 20},
            )
        count = [0]

        def counter(execute, sql, params, many, context):
            count[0] += 1
            return execute(sql, params, many, context)

        request = resync(district, ["TestScore"])
        with connections["default"].execute_wrapper(counter), connections["state"].execute_wrapper(counter):
            run_queue()
        assert DISBatchHistory.objects.get(request=request).status != StepStatus.FAILED
        return count[0]

    few = statements(0)
    many = statements(25)
    assert DistrictRecord.objects.filter(district=district, sync_object__name="TestScore").count() > 25
    assert many == few


def test_it_finds_parents_at_the_state_whether_their_ids_are_close_or_scattered(district):
    from django.utils import timezone

    now = timezone.now()
    StateRecord.objects.bulk_create(
        StateRecord(district_code="101", sync_object="Enrollment", record_id=i, step=0, synced_at=now)
        for i in [*range(1, 11), 1000]
    )
    StateRecord.objects.create(
        district_code="202", sync_object="Enrollment", record_id=12, step=0, synced_at=now
    )
    StateRecord.objects.create(district_code="101", sync_object="Roster", record_id=13, step=0, synced_at=now)
    # Close together: one range scan, then only the ids asked for.
    assert engine.at_state("101", {"Enrollment": {2, 3, 4, 12, 13}}) == {"Enrollment": {2, 3, 4}}
    # Scattered: looked up one by one.
    assert engine.at_state("101", {"Enrollment": {1, 5, 1000, 5000}}) == {"Enrollment": {1, 5, 1000}}
    assert engine.at_state("101", {"Enrollment": set()}) == {"Enrollment": set()}
    # Several objects in one query, close and scattered, each its own ids only.
    both = engine.at_state("101", {"Enrollment": {3, 13, 1000, 9000}, "Roster": {3, 13}, "School": set()})
    assert both == {"Enrollment": {3, 1000}, "Roster": {13}, "School": set()}


@COMMITTED
def test_it_queues_the_object_that_processed_most_last_time_first(district, queue):
    chain(district)
    add(district, "Behavior", 1, {"PersonIdentity": 1})
    for rid in range(1, 4):
        add(district, "ContactLog", rid, {"PersonIdentity": 1})
    resync(district, ["PersonIdentity"], check_dependencies=True)
    run_queue()
    objects = ["Behavior", "ContactLog", "VaccineShot"]  # one layer, under PersonIdentity
    resync(district, objects)
    run_queue()
    add(district, "VaccineShot", 1, {"PersonIdentity": 1})  # it processed none last time

    request = resync(district, objects)
    queued = [job.args[0] for job in queue.jobs]
    names = dict(DISBatchHistory.objects.filter(request=request).values_list("pk", "sync_object__name"))
    assert [names[pk] for pk in queued] == ["ContactLog", "Behavior", "VaccineShot"]  # 3, 1, then none


def reltuples() -> float:
    """The rows the state store's statistics know of (PostgreSQL)."""
    with connections["state"].cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'resync_staterecord'::regclass")
        return cursor.fetchone()[0]


@COMMITTED
@pytest.mark.skipif(
    connections["state"].vendor != "postgresql", reason="statistics are PostgreSQL's planner's (CI runs this)"
)
def test_it_refreshes_the_state_statistics_after_writing_many_parents(district, queue, monkeypatch):
    monkeypatch.setattr(engine, "ANALYZE_ROWS", 3)
    for rid in range(1, 11):
        add(district, "CourseCode", rid)  # nothing hangs off a course code
        add(district, "District", rid)  # schools hang off a district

    with connections["state"].cursor() as cursor:
        cursor.execute("ANALYZE resync_staterecord")  # statistics of an empty table
    assert reltuples() == 0
    resync(district, ["CourseCode"])
    run_queue()
    assert StateRecord.objects.count() == 10
    assert reltuples() == 0  # no step will look course codes up: no need to pay for statistics
    resync(district, ["District"])
    run_queue()
    assert StateRecord.objects.count() == 20
    assert reltuples() == 20  # without the refresh, the planner would still think it empty

    # Another district's first load: a small share of what the store holds (its 20 rows,
    # known), yet statistics taken before it know none of that district's rows.
    other = District.objects.create(state=district.state, code="202", name="Other County", scope_year=2027)
    for rid in range(1, 4):
        add(other, "District", rid)
    resync(other, ["District"])
    run_queue()
    assert reltuples() == 23


@COMMITTED
def test_it_refuses_to_start_with_an_unknown_write_path():
    import os
    import subprocess
    import sys

    env = dict(os.environ, RESYNC_WRITE="fast", DJANGO_SETTINGS_MODULE="statesync.settings")
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "RESYNC_WRITE='fast' is not one of sql, orm" in result.stderr


@COMMITTED
def test_it_keeps_reporting_a_step_that_waits_on_the_database(district, queue, monkeypatch, python_path):
    import time

    chain(district)
    request = resync(district, ["District"])
    queue.empty()  # run the step here, by hand
    step = lifecycle.claim(DISBatchHistory.objects.get(request=request).pk, "test:1")
    real = engine.context

    def slow_context(*args):
        time.sleep(1.2)  # as a large read or a slow lookup would
        return real(*args)

    monkeypatch.setattr(engine, "context", slow_context)
    beats = []
    engine.move_records(step, on_progress=lambda s: beats.append(s.processed))
    # One chunk, never full: only the heartbeat can have reported while it waited.
    assert len(beats) >= 2 and beats[0] == 0
    step.refresh_from_db()
    assert step.heartbeat_at > step.started_at


@COMMITTED
def test_it_reads_the_enrollments_once_per_test_score_step_whatever_its_chunks(
    demo_district, queue, settings
):
    district, expected = demo_district
    resync(district)
    run_queue()
    settings.RESYNC_CHUNK = 5  # many chunks
    reads = []

    def counter(execute, sql, params, many, context):
        if "end_date" in f"{sql} {params}":  # only the active-enrollment read filters on it
            reads.append(sql)
        return execute(sql, params, many, context)

    request = resync(district, ["TestScore"])
    with connections["default"].execute_wrapper(counter):
        run_queue()
    step = DISBatchHistory.objects.get(request=request)
    assert (step.processed, step.errors) == (expected.processed["TestScore"], expected.errors["TestScore"])
    assert step.processed > 5 * 3
    assert len(reads) == 1


def test_it_counts_only_whole_number_student_ids_as_enrolled(district):
    from types import SimpleNamespace

    odd = [None, "x12", True, 12.5, {"id": 13}]
    for rid, person in enumerate([7, "11", *odd], start=1):
        add(district, "Enrollment", rid, {"PersonIdentity": person}, {"end_date": None})
    add(district, "Enrollment", 20, {"PersonIdentity": 8}, {"end_date": "2027-01-31"})  # ended
    add(district, "Enrollment", 21, {"PersonIdentity": 9}, {"end_date": None}, excluded=True)
    add(district, "Enrollment", 22, {"PersonIdentity": 10}, {"end_date": None}, year=2026)
    step = SimpleNamespace(district_id=district.pk, school_year=2027)
    assert engine.enrolled_students(step) == {7, 11}


def test_it_hands_a_row_the_merge_refuses_to_on_reject_as_sent_and_loads_the_rest(district):
    # The merge finds these refusals by a join, after the file was staged: the report
    # still gets each row as the file sent it, and the valid rows still load.
    from loads.actions import check_load, do_load

    add(district, "School", 1, parents={"District": 1}, payload={"name": "Old", "number": "KY-1"})
    add(district, "Enrollment", 5, parents={"PersonIdentity": 9}, payload={"grade": "09"}, year=2028)
    rejected = []
    school = {"record_id": 1, "parents": {"District": 1}, "name": "Old", "number": "KY-9"}
    result = do_load(
        check_load(district, "School", None),
        [(2, school), (3, {"record_id": 2, "parents": {"District": 1}, "name": "New", "number": "KY-2"})],
        skip_invalid=True,
        on_reject=lambda line, row, problems: rejected.append((line, row, [p.field for p in problems])),
    )
    assert rejected == [(2, school, ["number"])]
    assert (result.inserted, result.updated, result.rejected, result.written) == (1, 0, 1, True)
    assert DistrictRecord.objects.get(district=district, record_id=1).payload["number"] == "KY-1"

    moved = do_load(
        check_load(district, "Enrollment", 2027),
        [(2, {"record_id": 5, "parents": {"PersonIdentity": 9}, "grade": "10"})],
    )
    assert not moved.written
    assert [str(p) for p in moved.problems] == [
        "line 2, record 5, field record_id: record 5 belongs to school year 2028"
    ]
    assert DistrictRecord.objects.get(district=district, record_id=5).school_year == 2028
