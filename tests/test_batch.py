"""A one-job request's small steps run in batches (runner.batch): the same counts,
colours, Error Log and state rows as one step at a time, and the same crash safety.
Issue 16: a small object's own step cost more than its records."""

import pytest
from django.db import OperationalError
from django.test import override_settings

from history.models import FINISHED, DISBatchHistory, ErrorLog, StepStatus
from resync.models import DistrictRecord, ResyncRequest, StateRecord, SyncObject
from runner import batch, lifecycle
from tool import actions

from .conftest import BOTH, run_queue
from .test_resync import results, state_rows

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)
ONE_JOB = override_settings(RESYNC_ONE_JOB_RECORDS=1_000_000)


def resync(district, objects=None):
    with ONE_JOB:
        request = actions.do_request_resync(actions.check_resync(district, None, objects, False))
    run_queue()
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED
    return request


def error_log(request) -> list[tuple]:
    rows = ErrorLog.objects.filter(step__request=request).values_list(
        "sync_object__name", "record_id", "reason", "message"
    )
    return sorted(rows)


@pytest.fixture(params=["python", "bulk"])
def path(request, settings):
    """Each batch path in turn, as the part a fault is put into: runner.batch's (steps judged
    in Python) and, on PostgreSQL, runner.bulk's (judged at the state)."""
    from runner import bulk

    if request.param == "python":
        settings.RESYNC_BULK = False
        return {"write": (batch, "write"), "judge": (batch, "judge")}
    if not bulk.usable():
        pytest.skip("the bulk path is PostgreSQL's (COPY)")
    return {"write": (bulk, "copy_across"), "judge": (bulk, "passing")}


@pytest.fixture
def batches(monkeypatch):
    """The batches run, as lists of object names."""
    seen, real = [], batch.move

    def spy(steps, catalog):
        seen.append(sorted(s.sync_object.name for s in steps))
        return real(steps, catalog)

    monkeypatch.setattr(batch, "move", spy)
    return seen


def test_it_gives_a_batched_request_a_step_by_steps_results(demo_district, queue, batches):
    district, expected = demo_district
    with override_settings(RESYNC_BATCH_RECORDS=0):
        alone = resync(district)
    assert batches == []
    rows, errors = state_rows(district), error_log(alone)
    StateRecord.objects.all().delete()

    batched = resync(district)
    # The whole request in one batch (lifecycle.span), TestScore and its reads too.
    assert len(batches) == 1 and len(batches[0]) > 20 and "TestScore" in batches[0], batches
    assert results(batched) == results(alone)
    for name, processed in expected.processed.items():
        assert results(batched)[name][:2] == (processed, expected.errors[name]), name
    assert state_rows(district) == rows
    assert error_log(batched) == errors
    steps = DISBatchHistory.objects.filter(request=batched)
    assert not steps.exclude(status__in=FINISHED).exists()
    assert not steps.filter(started_at=None).exists() and not steps.filter(ended_at=None).exists()


def test_it_runs_a_layers_small_steps_in_batches_with_a_step_by_steps_results(demo_district, queue, batches):
    """A district above RESYNC_BATCH_RECORDS: layer by layer, each layer's small steps
    batched, beside the large ones (on two lanes on PostgreSQL)."""
    district, _expected = demo_district
    with override_settings(RESYNC_BATCH_RECORDS=0):
        alone = resync(district)
    rows, errors = state_rows(district), error_log(alone)
    StateRecord.objects.all().delete()

    with override_settings(RESYNC_BATCH_RECORDS=100):
        batched = resync(district)
    assert len(batches) > 3 and all(sum(1 for _ in b) > 1 for b in batches), batches
    assert results(batched) == results(alone)
    assert state_rows(district) == rows
    assert error_log(batched) == errors


def test_it_removes_in_a_batch_what_the_district_no_longer_has(demo_district, queue, batches):
    district, _expected = demo_district
    resync(district)
    gone = DistrictRecord.objects.filter(district=district, sync_object__name="Day").order_by("id")[:2]
    gone_ids = [r.record_id for r in gone]
    DistrictRecord.objects.filter(pk__in=[r.pk for r in gone]).delete()
    before = StateRecord.objects.filter(district_code=district.code, sync_object="Day").count()
    batches.clear()

    resync(district)
    assert any("Day" in b for b in batches), batches
    days = StateRecord.objects.filter(district_code=district.code, sync_object="Day")
    assert days.count() == before - 2
    assert not days.filter(record_id__in=gone_ids).exists()


def test_it_judges_children_against_a_parent_removed_in_the_same_batch(demo_district, queue, batches):
    district, _expected = demo_district
    enrollment = DistrictRecord.objects.filter(district=district, sync_object__name="Enrollment").first()
    person = DistrictRecord.objects.get(
        district=district,
        sync_object__name="PersonIdentity",
        record_id=enrollment.parent_ids["PersonIdentity"],
    )

    def remove_then_resync():
        resync(district)
        DistrictRecord.objects.filter(pk=person.pk).delete()
        request = resync(district)
        DistrictRecord.objects.bulk_create([person])  # as it was, for the other way round
        return request

    with override_settings(RESYNC_BATCH_RECORDS=0):
        layered = remove_then_resync()
    rows, errors = state_rows(district), error_log(layered)
    assert any(e[0] == "Enrollment" and e[2] == "parent_missing" for e in errors), errors
    StateRecord.objects.all().delete()
    batches.clear()

    batched = remove_then_resync()
    assert any("PersonIdentity" in b and "Enrollment" in b for b in batches), batches
    assert results(batched) == results(layered)
    assert state_rows(district) == rows
    assert error_log(batched) == errors


def test_it_queues_a_batch_whose_connection_was_cut_again(demo_district, queue, monkeypatch, path):
    district, _expected = demo_district
    with override_settings(RESYNC_BATCH_RECORDS=0):
        alone = resync(district)
    rows = state_rows(district)
    StateRecord.objects.all().delete()
    module, name = path["write"]
    real, cuts = getattr(module, name), []

    def cut_once(steps, *args):
        if not cuts and len(steps) > 1:
            cuts.append([s.pk for s in steps])
            raise OperationalError("server closed the connection unexpectedly")
        return real(steps, *args)

    monkeypatch.setattr(module, name, cut_once)
    request = resync(district)
    assert len(cuts) == 1 and len(cuts[0]) > 1
    again = DISBatchHistory.objects.filter(pk__in=cuts[0])
    assert set(again.values_list("attempts", flat=True)) == {2}
    assert not again.filter(status=StepStatus.FAILED).exists()
    assert results(request) == results(alone)
    assert state_rows(district) == rows


def test_it_runs_a_failing_batch_one_step_at_a_time(demo_district, queue, monkeypatch, path):
    district, _expected = demo_district
    with override_settings(RESYNC_BATCH_RECORDS=0):
        alone = resync(district)
    rows, errors = state_rows(district), error_log(alone)
    StateRecord.objects.all().delete()
    module, name = path["judge"]
    real, broke = getattr(module, name), []

    def broken(steps, *args):
        if len(steps) > 1:  # a batch's, not a step's run alone
            broke.append(len(steps))
            raise ValueError("a bug in the batch")
        return real(steps, *args)

    monkeypatch.setattr(module, name, broken)
    request = resync(district)
    assert broke
    assert results(request) == results(alone)
    assert state_rows(district) == rows
    assert error_log(request) == errors  # the batch's own Error Log rows were not kept twice


def test_it_refuses_a_batched_step_whose_right_is_gone(district, queue, monkeypatch, batches):
    for name, n in (("CourseCode", 3), ("District", 4)):
        so = SyncObject.objects.get(name=name)
        DistrictRecord.objects.bulk_create(
            DistrictRecord(district=district, sync_object=so, record_id=i, payload={"n": i})
            for i in range(1, n + 1)
        )
    real = lifecycle.refusal
    monkeypatch.setattr(
        lifecycle,
        "refusal",
        lambda step: "Refused at run time: no" if step.sync_object.name == "District" else real(step),
    )
    request = resync(district, ["CourseCode", "District"])
    got = results(request)
    assert got["CourseCode"][:2] == (3, 0)
    assert got["District"][2] == StepStatus.FAILED
    assert batches == [["CourseCode"]]  # claimed with District in one batch, which was refused
    assert set(StateRecord.objects.values_list("sync_object", flat=True)) == {"CourseCode"}


def test_it_counts_each_steps_records_up_to_a_cap(district):
    so = SyncObject.objects.get(name="CourseCode")
    DistrictRecord.objects.bulk_create(
        DistrictRecord(district=district, sync_object=so, record_id=i, payload={}) for i in range(1, 8)
    )
    request = ResyncRequest.objects.create(district=district, school_year=2027)
    steps = [
        DISBatchHistory.objects.create(
            request=request, district=district, sync_object=o, school_year=2027, layer=0
        )
        for o in SyncObject.objects.filter(name__in=["CourseCode", "District"])
    ]
    by_name = {s.sync_object.name: s.pk for s in steps}
    assert batch.sizes(steps, 100) == {by_name["CourseCode"]: 7, by_name["District"]: 0}
    assert batch.sizes(steps, 5)[by_name["CourseCode"]] == 5


class Step:
    """What pack reads of a step."""

    def __init__(self, pk, name="CourseCode", records=None):
        self.pk = pk
        self.sync_object = type("O", (), {"name": name})()
        self.request = type("R", (), {"records": records})()


@override_settings(RESYNC_CHUNK=100)
def test_it_packs_small_steps_into_batches_and_leaves_large_ones_alone():
    steps = [Step(1), Step(2), Step(3, "TestScore"), Step(4), Step(5, records=[1]), Step(6), Step(7), Step(8)]
    counted = {1: 150, 2: 60, 3: 5, 4: 50, 5: 1, 6: 0, 7: 99, 8: 500}
    units = [[s.pk for s in unit] for unit in batch.pack(steps, counted, limit=120)]
    assert units == [[8], [1], [5], [2, 3, 4, 6], [7]]  # alone, the most records first
    alone = [[s.pk for s in u] for u in batch.pack(steps, counted, limit=0)]
    assert alone == [[8], [1], [7], [2], [4], [3], [5], [6]]


def test_it_refreshes_the_state_statistics_after_a_batch_writes_many_parents(district, queue, monkeypatch):
    from django.db import connections

    from runner import engine

    from .test_load_paths import reltuples

    if connections["state"].vendor != "postgresql":
        pytest.skip("statistics are PostgreSQL's planner's (CI runs this)")
    monkeypatch.setattr(engine, "ANALYZE_ROWS", 3)
    for name in ("CourseCode", "District"):  # nothing hangs off a course code; schools off a district
        so = SyncObject.objects.get(name=name)
        DistrictRecord.objects.bulk_create(
            DistrictRecord(district=district, sync_object=so, record_id=i, payload={}) for i in range(1, 11)
        )

    with connections["state"].cursor() as cursor:
        cursor.execute("ANALYZE resync_staterecord")  # statistics of an empty table
    resync(district, ["CourseCode"])
    assert reltuples() == 0  # no step will look course codes up
    StateRecord.objects.all().delete()
    resync(district, ["CourseCode", "District"])  # one batch (one layer, both small)
    assert StateRecord.objects.count() == 20
    assert reltuples() == 20


def state_request(districts, user):
    checks = [
        actions.check_resync(d, None, None, False, user=user, level=ResyncRequest.Level.STATE)
        for d in districts
    ]
    with ONE_JOB:
        return actions.do_request_resyncs(checks)


@pytest.fixture
def five(cast):
    from resync.models import District

    from .conftest import chain

    more = [
        District.objects.create(
            state=cast.district.state, code=str(300 + n), name=f"County {n}", scope_year=2027
        )
        for n in range(3)
    ]
    districts = [cast.district, cast.other, *more]
    for d in districts:
        chain(d)
    return districts


@override_settings(RESYNC_JOB_LANES=2)
def test_it_runs_a_state_requests_small_districts_side_by_side_in_one_job(five, cast, queue, monkeypatch):
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("two lanes need PostgreSQL (SQLite takes one writer at a time)")
    ran, real = set(), lifecycle.run_request

    def spy(request_id):
        ran.add(threading.current_thread().name)
        return real(request_id)

    monkeypatch.setattr(lifecycle, "run_request", spy)
    requests = state_request(five, cast.stella)
    group = f"requests-{requests[0].pk}"
    assert queue.job_ids == [group]
    assert set(
        ResyncRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list("job", flat=True)
    ) == {group}
    run_queue()
    assert any(name.startswith("resync-lane") for name in ran), ran
    for r in requests:
        r.refresh_from_db()
        assert r.status == ResyncRequest.Status.FINISHED
        assert results(r)["PersonIdentity"][:2] == (1, 0)
    assert StateRecord.objects.count() == 5 * 5


@override_settings(RESYNC_JOB_LANES=2, RESYNC_LOST_AFTER=1)
def test_it_gives_each_request_of_a_lost_group_job_a_job_of_its_own(five, cast, queue):
    from runner import jobs, recovery

    requests = state_request(five, cast.stella)
    group = f"requests-{requests[0].pk}"
    assert queue.job_ids == [group]
    queue.empty()  # Redis lost it
    queue.connection.delete(jobs.enqueue_claim_key(group))
    recovery.recover_requests()
    own = [lifecycle.request_job_id(r.pk) for r in requests]
    assert sorted(queue.job_ids) == sorted(own)
    assert sorted(
        ResyncRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list("job", flat=True)
    ) == sorted(own)
    recovery.recover_requests()  # again: each is enqueued once
    assert sorted(queue.job_ids) == sorted(own)
    run_queue()
    assert all(
        status == ResyncRequest.Status.FINISHED
        for status in ResyncRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list(
            "status", flat=True
        )
    )
    assert StateRecord.objects.count() == 5 * 5


def test_it_queues_a_dead_workers_whole_batch_again_before_its_job_runs(district, queue, monkeypatch):
    """A batch spanning layers whose worker died: recovery queues its steps again
    together, so the job that takes the request again runs the parent with its child,
    not the child alone against a state without the new parent (a reviewer's case)."""
    import socket

    from django.db import transaction

    from runner import jobs as runner_jobs
    from runner import recovery

    from .conftest import add

    dead = f"{socket.gethostname()}:999999"  # no such pid here: worker_dead() at once
    add(district, "District", 1)
    add(district, "School", 1, {"District": 1})
    resync(district, ["District", "School"])
    add(district, "District", 2)
    add(district, "School", 2, {"District": 2})
    with ONE_JOB:
        request = actions.do_request_resync(
            actions.check_resync(district, None, ["District", "School"], False)
        )
    queue.empty()
    with transaction.atomic():
        ids = lifecycle.advance_locked(request.pk, driving=True)
    assert len(ids) == 2  # one span: District (layer 0) and School (layer 1)
    lifecycle.claim_all(list(lifecycle.read_steps(ids).values()), dead)  # claimed, then the worker died

    # Another worker takes the request's job as soon as recovery enqueues it.
    monkeypatch.setattr(runner_jobs, "requeue_job", lambda func, pk, job_id: func(pk))
    recovery.recover_stale_steps()
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED
    school = DISBatchHistory.objects.get(request=request, sync_object__name="School")
    assert (school.processed, school.errors) == (2, 0)
    assert not ErrorLog.objects.filter(step=school).exists()
    assert StateRecord.objects.filter(sync_object="School").count() == 2


def test_it_beats_and_pushes_a_batchs_running_steps_while_it_runs(district, queue, monkeypatch, path):
    import time

    for name in ("CourseCode", "District"):
        so = SyncObject.objects.get(name=name)
        DistrictRecord.objects.bulk_create(
            DistrictRecord(district=district, sync_object=so, record_id=i, payload={}) for i in range(1, 4)
        )
    module, name = path["write"]
    real_part, real_push = getattr(module, name), lifecycle.push_steps
    pushed, beats = [], []

    def slow(steps, *args):
        time.sleep(1.3)  # a slow batch: about two beats
        beats.extend(
            DISBatchHistory.objects.filter(pk__in=[s.pk for s in steps]).values_list(
                "heartbeat_at", flat=True
            )
        )
        return real_part(steps, *args)

    def watch(steps):
        pushed.append([s.status for s in steps])
        return real_push(steps)

    monkeypatch.setattr(module, name, slow)
    monkeypatch.setattr(lifecycle, "push_steps", watch)
    request = resync(district, ["CourseCode", "District"])
    running = [p for p in pushed if set(p) == {StepStatus.RUNNING}]
    assert len(running) >= 3, pushed  # at the claim, then at least two beats
    assert pushed[-1] == [StepStatus.GREEN, StepStatus.GREEN]  # the end, after every beat
    steps = DISBatchHistory.objects.filter(request=request)
    assert all(b > s.started_at for b, s in zip(beats, steps.order_by("pk"), strict=False))
