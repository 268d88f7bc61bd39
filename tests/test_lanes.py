"""A one-job request runs each layer's steps side by side on its worker's lanes
(runner.lanes, RESYNC_JOB_LANES): the same results as one step at a time, every step
once, and no connection left open when the worker stops."""

import signal
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from history.models import DISBatchHistory, StepStatus
from resync.models import (
    DistrictRecord,
    ResyncRequest,
    StateRecord,
    SyncObject,
    objects_holding,
    record_scope,
)
from runner import jobs as runner_jobs
from runner import lanes, lifecycle, recovery

from .conftest import BOTH, run_queue
from .test_one_job import ONE_JOB, course_codes, resync
from .test_resync import results, state_rows
from .test_settings import _start
from .test_worker_crash import backends_of_others

SQLITE = "SQLite takes one writer at a time: lanes need PostgreSQL (run under .ci/run)"


def test_it_runs_every_id_once_across_its_lanes():
    ran, seen = [], set()

    def run(i: int) -> None:
        time.sleep(0.002)  # long enough that every lane takes some
        ran.append(i)
        seen.add(threading.get_ident())

    lanes.run_all(list(range(40)), run, 3)
    assert sorted(ran) == list(range(40))
    assert len(seen) == 3
    assert threading.get_ident() in seen


def test_it_runs_on_the_calling_thread_alone_with_one_lane():
    seen = set()
    lanes.run_all(list(range(5)), lambda i: seen.add(threading.current_thread().name), 1)
    assert seen == {threading.current_thread().name}


def test_it_stops_taking_ids_once_one_raises_and_raises_it():
    ran = []

    def run(i: int) -> None:
        if i == 3:
            raise ValueError("step 3 broke")
        time.sleep(0.002)
        ran.append(i)

    with pytest.raises(ValueError, match="step 3 broke"):
        lanes.run_all(list(range(200)), run, 2)
    assert 3 not in ran
    assert len(ran) < 20  # the other lane finished what it ran, then took no more


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_it_runs_a_one_job_requests_layers_on_two_lanes_with_one_lanes_results(
    demo_district, queue, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip(SQLITE)
    district, expected = demo_district
    threads = set()
    run_unit = lifecycle.run_unit  # a step, or a batch of small ones

    def spy(ids, **kwargs):
        threads.add(threading.current_thread().name)
        return run_unit(ids, **kwargs)

    monkeypatch.setattr(lifecycle, "run_unit", spy)
    counted = set()  # instrumentation on the caller's connection (the benchmark's) sees the lanes' too

    def count(execute, sql, params, many, context):
        counted.add(threading.current_thread().name)
        return execute(sql, params, many, context)

    # No batches (tests/test_batch.py has them): a small request is one batch, on one lane.
    with (
        ONE_JOB,
        override_settings(RESYNC_JOB_LANES=2, RESYNC_BATCH_RECORDS=0),
        connection.execute_wrapper(count),
    ):
        side_by_side = resync(district)
        run_queue()
    assert any(name.startswith("resync-lane") for name in threads), threads
    assert any(name.startswith("resync-lane") for name in counted), counted
    assert connection.execute_wrappers == []
    got = results(side_by_side)
    for name, processed in expected.processed.items():
        assert got[name][:2] == (processed, expected.errors[name]), name
    rows = state_rows(district)
    assert ResyncRequest.objects.get(pk=side_by_side.pk).status == ResyncRequest.Status.FINISHED
    # The worker stopped (burst): its lanes' connections went with it.
    assert backends_of_others() == []

    StateRecord.objects.all().delete()
    threads.clear()
    with ONE_JOB, override_settings(RESYNC_JOB_LANES=1, RESYNC_BATCH_RECORDS=0):
        one_lane = resync(district)
        run_queue()
    assert not any(name.startswith("resync-lane") for name in threads), threads
    assert results(one_lane) == got
    assert state_rows(district) == rows


def test_it_refuses_lanes_on_sqlite():
    result = _start({"RESYNC_JOB_LANES": "2"})
    assert result.returncode != 0
    assert "RESYNC_JOB_LANES=2 needs PostgreSQL on both sides" in result.stderr


@pytest.mark.django_db(databases=BOTH)
def test_it_finds_the_objects_holding_records_as_record_scope_does(district):
    # The set form of record_scope (finish_empty asks it of a layer at once) agrees with
    # record_scope's own querysets, object by object: records on one side only, in
    # another year only (a year-scoped object then holds none), or none at all.
    objects = list(SyncObject.objects.all())
    scoped = [o for o in objects if o.year_scoped][:4]
    whole = [o for o in objects if not o.year_scoped][:4]
    assert len(scoped) == len(whole) == 4
    for i, (obj, year) in enumerate(
        [(scoped[0], 2027), (scoped[1], 2026), (whole[0], 2026), (whole[1], 2027)]
    ):
        DistrictRecord.objects.create(district=district, sync_object=obj, record_id=i + 1, school_year=year)
    for i, (obj, year) in enumerate([(scoped[2], 2027), (scoped[3], 2025), (whole[2], 2025)]):
        StateRecord.objects.create(
            district_code=district.code,
            sync_object=obj.name,
            record_id=i + 1,
            school_year=year,
            parent_ids={},
            payload={},
            step=0,
            synced_at=timezone.now(),
        )
    want = set()
    for obj in objects:
        district_side, state_side = record_scope(district, obj, 2027)
        if district_side.exists() or state_side.exists():
            want.add(obj.pk)
    assert want == {scoped[0].pk, whole[0].pk, whole[1].pk, scoped[2].pk, whole[2].pk}
    assert objects_holding(district, objects, 2027) == want
    assert objects_holding(district, [scoped[1], whole[3]], 2027) == set()


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_it_claims_a_step_read_with_its_layer_only_if_it_has_not_moved_on(district, queue):
    course_codes(district, 3)
    request = resync(district, ["CourseCode"])
    step = DISBatchHistory.objects.get(request=request)
    assert step.status == StepStatus.QUEUED
    read = lifecycle.read_steps([step.pk])[step.pk]
    # Recovery queued it again since the layer was read: its attempts moved on.
    DISBatchHistory.objects.filter(pk=step.pk).update(attempts=F("attempts") + 2)
    claimed = lifecycle.claim(step.pk, "test:1", read)
    assert claimed is not read
    assert (claimed.status, claimed.attempts) == (StepStatus.RUNNING, read.attempts + 3)

    DISBatchHistory.objects.filter(pk=step.pk).update(status=StepStatus.QUEUED)
    read = lifecycle.read_steps([step.pk])[step.pk]
    claimed = lifecycle.claim(step.pk, "test:2", read)
    assert claimed is read
    row = DISBatchHistory.objects.get(pk=step.pk)
    assert (row.status, row.worker, row.attempts) == (StepStatus.RUNNING, "test:2", claimed.attempts)
    assert (claimed.worker, claimed.started_at, claimed.processed) == ("test:2", row.started_at, 0)
    assert lifecycle.claim(step.pk, "test:3", read) is None  # running: nobody else takes it


def test_it_waits_for_a_lanes_step_when_a_signal_interrupts_its_wait():
    # A worker's cold shutdown or RQ's job timeout raises on the main thread while it
    # waits for the lanes: the step a lane still runs must end before run_all does.
    ended, lane_runs = [], threading.Event()

    def run(i: int) -> None:
        if threading.current_thread() is threading.main_thread():
            assert lane_runs.wait(5)  # the lane has taken the other id
            signal.setitimer(signal.ITIMER_REAL, 0.05)  # fires while run_all waits for it
        else:
            lane_runs.set()
            time.sleep(0.3)
        ended.append(i)

    def interrupt(signum, frame):
        raise TimeoutError("the job's time is up")

    before = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(TimeoutError, match="time is up"):
            lanes.run_all([1, 2], run, 2)
        assert sorted(ended) == [1, 2]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_it_enqueues_a_dead_workers_one_job_request_once_for_its_two_running_steps(
    district, queue, monkeypatch
):
    course_codes(district, 3)
    with ONE_JOB:
        request = resync(district, ["CourseCode", "School"])
    queue.empty()
    steps = DISBatchHistory.objects.filter(request=request)
    assert steps.count() == 2
    # Its worker ran both on its two lanes, then died; two recoverers find them.
    long_ago = timezone.now() - timedelta(hours=1)
    steps.update(status=StepStatus.RUNNING, worker="elsewhere:1", heartbeat_at=long_ago, attempts=1)
    enqueued = []
    monkeypatch.setattr(runner_jobs, "requeue_job", lambda func, pk, job_id: enqueued.append(job_id))
    assert sorted(recovery.recover_stale_steps()) == sorted(s.pk for s in steps)
    assert recovery.recover_stale_steps() == []
    assert enqueued == [lifecycle.request_job_id(request.pk)]
