"""A small district's request runs whole in one RQ job (runner.lifecycle.run_request):
the same results as a job per step, and the same recovery when a worker dies or a job
is lost. Issue 16: a step's own job and a layer's wake-up took most of a small
district's time."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import OperationalError, connections
from django.test import override_settings
from rq.job import Job
from rq.worker import Worker

from core import events
from history.models import FINISHED, DISBatchHistory, StepStatus
from resync.models import DistrictRecord, ResyncRequest, StateRecord, SyncObject
from runner import jobs as runner_jobs
from runner import lifecycle, recovery
from tool import actions

from .conftest import BOTH, run_queue
from .servers import kill_mid_step
from .test_resync import results, state_rows
from .test_worker_crash import backends_of_others

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)
ONE_JOB = override_settings(RESYNC_ONE_JOB_RECORDS=1_000_000)


def resync(district, objects=None):
    return actions.do_request_resync(actions.check_resync(district, None, objects, False))


def course_codes(district, n: int) -> None:
    so = SyncObject.objects.get(name="CourseCode")
    DistrictRecord.objects.bulk_create(
        DistrictRecord(district=district, sync_object=so, record_id=i, payload={"n": i})
        for i in range(1, n + 1)
    )


def test_it_runs_a_small_districts_request_in_one_job_with_a_job_per_steps_results(demo_district, queue):
    district, expected = demo_district
    with ONE_JOB:
        request = resync(district)
    request.refresh_from_db()
    assert request.one_job
    assert queue.job_ids == [lifecycle.request_job_id(request.pk)]
    run_queue()
    request.refresh_from_db()
    assert (request.status, request.outcome) == (ResyncRequest.Status.FINISHED, "red")
    one_job = results(request)
    for name, processed in expected.processed.items():
        assert one_job[name][:2] == (processed, expected.errors[name]), name
    assert not DISBatchHistory.objects.filter(request=request).exclude(status__in=FINISHED).exists()
    rows = state_rows(district)

    StateRecord.objects.all().delete()
    per_step = resync(district)  # RESYNC_ONE_JOB_RECORDS=0 here (tests/conftest.py)
    assert not ResyncRequest.objects.get(pk=per_step.pk).one_job
    assert all(j.startswith("step-") for j in queue.job_ids)
    run_queue()
    assert results(per_step) == one_job
    assert state_rows(district) == rows


def test_it_gives_a_district_at_the_limit_a_job_per_step(district, queue):
    course_codes(district, 30)
    with override_settings(RESYNC_ONE_JOB_RECORDS=30):
        at_limit = resync(district, ["CourseCode"])
    assert not ResyncRequest.objects.get(pk=at_limit.pk).one_job
    run_queue()
    with override_settings(RESYNC_ONE_JOB_RECORDS=31):
        below = resync(district, ["CourseCode"])
    assert ResyncRequest.objects.get(pk=below.pk).one_job
    assert queue.job_ids == [lifecycle.request_job_id(below.pk)]


def test_it_runs_again_in_the_same_job_a_step_whose_connection_was_cut(district, queue, monkeypatch):
    course_codes(district, 50)
    real, cuts = lifecycle.move_records, []

    def cut_once(step, on_progress=None, catalog=None):
        if not cuts:
            cuts.append(step.pk)
            raise OperationalError("server closed the connection unexpectedly")
        return real(step, on_progress, catalog)

    monkeypatch.setattr(lifecycle, "move_records", cut_once)
    runs = []
    real_request = lifecycle.run_request

    def counted(request_id):
        runs.append(request_id)
        return real_request(request_id)

    with ONE_JOB:
        request = resync(district, ["CourseCode"])
    # After the send: its job names the function by path, and a worker imports this one.
    monkeypatch.setattr(lifecycle, "run_request", counted)
    run_queue()
    assert runs == [request.pk]  # the job ran it again itself, not a job recovery enqueued
    request.refresh_from_db()
    step = DISBatchHistory.objects.get(request=request)
    assert (request.status, step.status, step.processed, step.attempts) == ("finished", "green", 50, 2)
    assert cuts == [step.pk] and queue.job_ids == []


def test_it_enqueues_again_a_one_job_requests_lost_job(district, queue):
    course_codes(district, 5)
    with ONE_JOB:
        request = resync(district, ["CourseCode"])
    queue.empty()  # Redis lost it before any worker took it, RESYNC_LOST_AFTER ago
    queue.connection.delete(runner_jobs.enqueue_claim_key(lifecycle.request_job_id(request.pk)))
    assert recovery.recover_requests() == []  # nothing moved: it only enqueued its job again
    assert queue.job_ids == [lifecycle.request_job_id(request.pk)]
    recovery.recover_requests()  # the job waits in the queue: not enqueued twice
    assert queue.job_ids == [lifecycle.request_job_id(request.pk)]
    run_queue()
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED


def test_it_recovers_a_one_job_request_whose_worker_was_killed(district, queue):
    course_codes(district, 20000)
    with ONE_JOB:
        request = resync(district, ["CourseCode"])
    step = DISBatchHistory.objects.get(request=request)
    # The chunk path in many small chunks: a long step to kill in the middle of.
    kill_mid_step(step, RESYNC_CHUNK="10", RESYNC_BULK="false")
    assert not StateRecord.objects.exists()
    job = Job.fetch(lifecycle.request_job_id(request.pk), connection=queue.connection)
    assert job.get_status() == "started"  # RQ still thinks it runs
    assert runner_jobs.job_lost(job.id)  # its worker is gone: it does not

    assert recovery.recover_stale_steps() == [step.pk]
    assert queue.job_ids == [lifecycle.request_job_id(request.pk)]
    run_queue()
    step.refresh_from_db()
    assert (step.status, step.processed, step.attempts) == (StepStatus.GREEN, 20000, 2)
    assert StateRecord.objects.count() == 20000


def test_it_calls_a_started_job_lost_only_when_its_worker_is_gone(queue, monkeypatch):
    from worker.worker import ResyncWorker

    # The probe worker is this process: alive while it runs a job (jobs.worker_dead).
    monkeypatch.setattr(runner_jobs, "job_running_here", True)

    job = queue.enqueue(print, job_id="probe")
    worker = ResyncWorker([queue], connection=queue.connection, name="probe-worker")
    worker.register_birth()
    try:
        job.prepare_for_execution(worker.name, queue.connection.pipeline())
        queue.connection.hset(job.key, mapping={"status": "started", "worker_name": worker.name})
        assert not runner_jobs.job_lost("probe")  # its worker is alive
        monkeypatch.setattr(runner_jobs, "job_running_here", False)
        assert runner_jobs.job_lost("probe")  # its worker's process runs no job: it died with it
        monkeypatch.setattr(runner_jobs, "job_running_here", True)
        queue.connection.delete(worker.key)  # RQ forgot the worker (its key expired)
        assert Worker.find_by_key(worker.key, connection=queue.connection) is None
        assert runner_jobs.job_lost("probe")
    finally:
        worker.register_death()


def test_it_keeps_a_workers_connections_from_one_job_to_the_next(district, queue, monkeypatch):
    course_codes(district, 5)
    seen = []
    real = lifecycle.move_records

    def watch(step, on_progress=None, catalog=None):
        seen.append(connections["default"].connection)  # the object: an id() may be reused
        return real(step, on_progress, catalog)

    monkeypatch.setattr(lifecycle, "move_records", watch)
    first = resync(district, ["CourseCode"])
    second = resync(district, ["CourseCode"])  # it waits for the first: one worker's run takes both
    run_queue()
    for request in (first, second):
        request.refresh_from_db()
        assert request.status == ResyncRequest.Status.FINISHED
    assert len(seen) == 2 and seen[0] is seen[1]
    assert not runner_jobs.keep_connections  # only while a worker works
    if connections["default"].vendor == "postgresql":
        # A worker that stops leaves no backend open, its state-side thread's neither.
        assert backends_of_others() == []


def test_it_pushes_through_one_long_lived_event_loop_and_back(queue):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("probe", channel)
    try:
        events.start_loop()
        loop = events._loop
        events.send(["probe"], {"type": "probe", "n": 1})
        events.send(["probe"], {"type": "probe", "n": 2})
        assert events._loop is loop  # the same loop for every push
        events.stop_loop()
        assert events._loop is None
        events.send(["probe"], {"type": "probe", "n": 3})  # a loop per push again

        async def take(n: int) -> list[int]:
            return [(await layer.receive(channel))["n"] for _ in range(n)]

        got = async_to_sync(take)(3)
        assert got == [1, 2, 3]
    finally:
        events.stop_loop()
        async_to_sync(layer.group_discard)("probe", channel)


def test_it_pushes_without_waiting_for_redis_in_order_and_delivers_all_before_it_stops(monkeypatch):
    gate, got = threading.Event(), []

    async def held(layer, groups, message):  # Redis slow to answer, until the gate opens
        while not gate.is_set():
            await asyncio.sleep(0.01)
        got.append(message["n"])

    monkeypatch.setattr(events, "_deliver", held)
    monkeypatch.setattr(events, "PUSH_TIMEOUT_SECONDS", 1)
    events.start_loop()
    try:
        for n in range(10):  # each would wait out its timeout, and be dropped, if send waited
            events.send(["probe"], {"type": "probe", "n": n})
        assert got == []
        gate.set()
    finally:
        events.stop_loop()
    assert got == list(range(10))


def test_it_pushes_the_slow_way_if_the_outbox_sender_ended(queue):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("probe", channel)
    events.start_loop()
    try:
        events._sender.cancel()  # it never should end; if it did, pushes must not pile up unsent
        while not events._sender.done():
            time.sleep(0.01)
        events.send(["probe"], {"type": "probe", "n": 7})
        assert events._outbox.qsize() == 0

        async def take() -> int:
            return (await layer.receive(channel))["n"]

        assert async_to_sync(take)() == 7
    finally:
        events.stop_loop()
        async_to_sync(layer.group_discard)("probe", channel)


# Layer by layer: a small request's layers run in one batch otherwise (lifecycle.span),
# its rights checked once for them all when the batch is claimed.
@override_settings(RESYNC_BATCH_RECORDS=0)
def test_it_checks_the_requesters_rights_again_for_each_layer(cast, queue, monkeypatch):
    from guardian.shortcuts import remove_perm

    from resync import rights

    from .conftest import chain

    bob = cast.bob  # may resync district A, Enrollment and PersonIdentity only
    chain(cast.district)  # PersonIdentity has a record; Enrollment, a layer later, none
    with ONE_JOB:
        checked = actions.check_resync(cast.district, None, ["PersonIdentity", "Enrollment"], False, user=bob)
        request = actions.do_request_resync(checked)
    real = lifecycle.move_records

    def revoke_while_running(step, on_progress=None, catalog=None):
        remove_perm(rights.DISTRICT, bob, cast.district)  # during the first layer's step
        return real(step, on_progress, catalog)

    monkeypatch.setattr(lifecycle, "move_records", revoke_while_running)
    run_queue()
    steps = {s.sync_object.name: s for s in DISBatchHistory.objects.filter(request=request)}
    ran = steps["PersonIdentity"]  # checked before it ran: it ran (its parents are not at the state)
    assert (ran.status, ran.processed, ran.message) == (StepStatus.RED, 1, "")
    assert steps["Enrollment"].status == StepStatus.FAILED
    assert steps["Enrollment"].message.startswith("Refused at run time: ")


def test_it_enqueues_again_the_job_of_a_request_whose_worker_died_between_steps(district, queue):
    course_codes(district, 5)
    with ONE_JOB:
        request = resync(district, ["CourseCode"])
    job_id = lifecycle.request_job_id(request.pk)
    queue.empty()
    queue.connection.delete(runner_jobs.enqueue_claim_key(job_id))  # enqueued long ago
    # Its worker took the job, queued the first layer's step, then died before claiming it.
    DISBatchHistory.objects.filter(request=request).update(status=StepStatus.QUEUED)
    queue.connection.hset(Job.key_for(job_id), mapping={"status": "started", "worker_name": "gone-worker"})
    assert recovery.recover_stale_steps() == []
    assert queue.job_ids == [job_id]
    run_queue()
    request.refresh_from_db()
    assert (request.status, request.outcome) == (ResyncRequest.Status.FINISHED, "green")


def test_it_enqueues_a_request_job_once_when_two_recoverers_find_it_lost(district, queue, monkeypatch):
    course_codes(district, 5)
    with ONE_JOB:
        request = resync(district, ["CourseCode"])
    job_id = lifecycle.request_job_id(request.pk)
    queue.empty()
    queue.connection.delete(runner_jobs.enqueue_claim_key(job_id))  # the send's claim, long expired
    monkeypatch.setattr(runner_jobs, "job_lost", lambda _id: True)  # both look before either enqueues
    lifecycle.queue_request(request.pk)
    lifecycle.queue_request(request.pk)
    assert queue.job_ids == [job_id]
