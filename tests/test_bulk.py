"""The bulk path (runner.bulk): a step's records judged where they land, at the state.

It must write what the chunk path writes, record for record and error for
error: its SQL only lets through what resync.rules pass beyond doubt, and
hands the rest to the rules. PostgreSQL's alone (COPY from one database into
the other): on SQLite every step takes the chunk path, and these tests skip.
"""

import psycopg2
import pytest
from django.db import connections

from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync.models import DistrictRecord, StateRecord, SyncObject
from runner import bulk, engine
from tool import actions

from .conftest import BOTH, COMMITTED, add, run_queue

pytestmark = [
    pytest.mark.django_db(databases=BOTH),
    pytest.mark.skipif(
        connections["state"].vendor != "postgresql", reason="the bulk path is PostgreSQL's (COPY)"
    ),
]

# A School's District id as a district may store it, and what the rules make of it.
PARENT_IDS = {
    1: {"District": 1},  # present: passes in SQL
    2: {"District": -1},  # a negative id, present: passes in SQL
    3: {"District": 7},  # not at the state
    4: {"District": "12"},  # digits as text, present: the rules pass it, the SQL does not decide
    5: {"District": "-12"},  # malformed
    6: {"District": 1.5},
    7: {"District": 12.0},  # a fraction, however whole
    8: {"District": True},
    9: {"District": None},  # names no parent
    10: {},
    11: {"District": 2**63},  # beyond bigint
    12: {"District": 1234567890123456789},  # 19 digits, present: the rules pass it
    13: {"District": [1]},
    14: {"District": {"id": 1}},
    15: [1],  # parent ids that are no object
    16: "District 1",
}


def resync(district, objects):
    return actions.do_request_resync(actions.check_resync(district, None, objects, False))


def awkward_schools(district) -> None:
    for rid in (1, -1, 12, 1234567890123456789):
        add(district, "District", rid)
    school = SyncObject.objects.get(name="School")
    DistrictRecord.objects.filter(district=district, sync_object=school).delete()
    DistrictRecord.objects.bulk_create(
        [
            DistrictRecord(district=district, sync_object=school, record_id=r, parent_ids=p)
            for r, p in PARENT_IDS.items()
        ]
        + [
            DistrictRecord(
                district=district, sync_object=school, record_id=20, parent_ids={"District": 1}, payload=[1]
            ),
            DistrictRecord(
                district=district, sync_object=school, record_id=21, parent_ids={"District": 1}, payload="x"
            ),
            DistrictRecord(
                district=district,
                sync_object=school,
                record_id=22,
                parent_ids={"District": 1},
                state_excluded=True,
            ),
            DistrictRecord(
                district=district,
                sync_object=school,
                record_id=23,
                parent_ids={"District": 1},
                payload={"name": 'back\\slash, tab\t, newline\n, \\N, "quoted", é ☃'},
            ),
        ]
    )


def outcome(district, request) -> dict:
    step = DISBatchHistory.objects.get(request=request, sync_object__name="School")
    return {
        "step": (step.processed, step.errors, step.status),
        "state": {
            (r.record_id, str(r.parent_ids), str(r.payload), r.step == step.pk)
            for r in StateRecord.objects.filter(district_code=district.code, sync_object="School")
        },
        "errors": sorted(ErrorLog.objects.filter(step=step).values_list("record_id", "reason", "message")),
    }


def run_both_ways(district, monkeypatch) -> dict:
    judged_here, real_split = [], engine.split_chunk

    def spy(step, rows, ctx):
        judged_here.extend(r[engine.RECORD_ID] for r in rows)
        return real_split(step, rows, ctx)

    runs = {}
    for path in ("chunk", "bulk"):
        StateRecord.objects.filter(district_code=district.code).delete()
        StateRecord.objects.create(  # a record the district no longer has: the step removes it
            district_code=district.code,
            sync_object="School",
            record_id=99,
            step=0,
            synced_at="2026-01-01T00:00Z",
        )
        with monkeypatch.context() as m:
            if path == "chunk":
                m.setattr(bulk, "fits", lambda step: False)
            else:
                m.setattr(engine, "split_chunk", spy)
            run_queue_for = resync(district, ["District", "School"])
            run_queue()
        runs[path] = outcome(district, run_queue_for)
    return {"runs": runs, "judged_in_python": judged_here}


@COMMITTED
def test_it_writes_what_the_chunk_path_writes_whatever_the_records_hold(district, queue, monkeypatch):
    awkward_schools(district)
    both = run_both_ways(district, monkeypatch)
    runs = both["runs"]
    assert runs["bulk"] == runs["chunk"]
    processed, errors, status = runs["bulk"]["step"]
    assert (processed, errors) == (len(PARENT_IDS) + 4, 15)
    assert status == StepStatus.RED  # 15 errors in 20
    sent = {r[0] for r in runs["bulk"]["state"]}
    assert sent == {1, 2, 4, 12, 23}  # 99 removed, the rest errored
    reasons = {rid: reason for rid, reason, _m in runs["bulk"]["errors"]}
    assert reasons[3] == reasons[9] == reasons[10] == "parent_missing"
    assert reasons[22] == "state_excluded"
    assert {reasons[r] for r in (5, 6, 7, 8, 11, 13, 14, 15, 16, 20, 21)} == {"malformed"}


@COMMITTED
def test_it_judges_in_python_only_what_its_sql_does_not_pass(district, queue, monkeypatch):
    awkward_schools(district)
    judged = set(run_both_ways(district, monkeypatch)["judged_in_python"])
    # The District step's four plain ids, and the Schools' plain ones, never left the database.
    assert judged.isdisjoint({1, 2, 23, -1})
    assert judged == set(PARENT_IDS) - {1, 2} | {20, 21, 22}


@COMMITTED
def test_it_leaves_the_state_as_it_was_when_the_step_fails_after_the_upsert(district, queue, monkeypatch):
    awkward_schools(district)
    first = resync(district, ["District", "School"])
    run_queue()
    before = outcome(district, first)["state"]
    DistrictRecord.objects.filter(district=district, sync_object__name="School", record_id=23).update(
        payload={"name": "renamed"}
    )

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk, "judge_the_rest", fail)
    request = resync(district, ["School"])
    run_queue()
    step = DISBatchHistory.objects.get(request=request)
    assert step.status == StepStatus.FAILED and "disk full" in step.message
    rows = StateRecord.objects.filter(district_code=district.code, sync_object="School")
    assert {(r.record_id, str(r.parent_ids), str(r.payload), True) for r in rows} == before


@COMMITTED
def test_it_runs_a_step_again_when_the_district_connection_dies_mid_copy(district, queue, monkeypatch):
    for rid in range(1, 4):
        add(district, "District", rid)
    real, cuts = bulk.CountingReader.read, []

    def cut_once(self, size=-1):
        if not cuts:
            # The district connection's server process ends while its COPY streams.
            pid = connections["default"].connection.get_backend_pid()
            killer = psycopg2.connect(**connections["default"].get_connection_params())
            killer.autocommit = True
            killer.cursor().execute("SELECT pg_terminate_backend(%s)", [pid])
            killer.close()
            cuts.append(pid)
        return real(self, size)

    monkeypatch.setattr(bulk.CountingReader, "read", cut_once)
    request = resync(district, ["District"])
    run_queue()
    step = DISBatchHistory.objects.get(request=request)
    assert cuts and (step.status, step.attempts, step.processed, step.errors) == (
        StepStatus.GREEN,
        2,
        3,
        0,
    )
    assert set(
        StateRecord.objects.filter(district_code=district.code).values_list("record_id", flat=True)
    ) == {1, 2, 3}


@COMMITTED
def test_it_reports_a_steps_rows_as_they_stream_in(district, queue, settings, monkeypatch):
    for rid in range(1, 31):
        add(district, "District", rid)
    monkeypatch.setattr(engine, "PROGRESS_SECONDS", 0.1)
    real, seen = bulk.CountingReader.read, []

    def small_reads(self, size=-1):
        import time

        time.sleep(0.05)
        data = real(self, 64)  # a few rows at a time
        seen.append(self.tally.processed)
        return data

    monkeypatch.setattr(bulk.CountingReader, "read", small_reads)
    pushes = []
    request = resync(district, ["District"])
    queue.empty()
    from runner import lifecycle

    step = lifecycle.claim(DISBatchHistory.objects.get(request=request).pk, "test:1")
    lifecycle.move_records(step, on_progress=lambda s: pushes.append(s.processed))
    assert step.processed == 30
    assert any(0 < n < 30 for n in seen)
    assert any(0 < n < 30 for n in pushes)  # the beat pushed the rows counted so far


def test_it_selects_each_steps_record_scope(district):
    from resync.models import ResyncRequest

    for year in (2026, 2027):
        for rid in (1, 2, 3):
            add(district, "Enrollment", rid + 10 * year, {"PersonIdentity": rid}, year=year)  # year-scoped
    for rid in (1, 2, 3):
        add(district, "District", rid)
    request = ResyncRequest.objects.create(district=district, school_year=2027)
    catalog = engine.read_catalog()
    for name in ("Enrollment", "District"):
        for records in (None, [2, 20272, 20262]):
            request.records = records
            step = DISBatchHistory(
                pk=1,
                request=request,
                district=district,
                sync_object=SyncObject.objects.get(name=name),
                school_year=2027,
            )
            with connections["default"].cursor() as cursor:
                cursor.execute(
                    f"SELECT r.record_id FROM ({bulk.select([step], catalog)}) AS r(step, id, record_id)"
                )
                mine = sorted(row[0] for row in cursor.fetchall())
            assert mine == sorted(engine.scope(step)[0].values_list("record_id", flat=True))
            assert mine  # each case selects something
