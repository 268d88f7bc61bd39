"""A worker killed with SIGKILL in the middle of a step leaves nothing half-written;
recovery queues again what a dead worker or a lost RQ job left behind."""

import logging
import socket
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from rq.job import Job, JobStatus

from alerts.models import ProcessAlert
from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync.models import DistrictRecord, ResyncRequest, StateRecord, SyncObject
from runner import jobs as runner_jobs
from runner import lifecycle, recovery
from tool import actions
from verification import actions as verify
from verification.models import DISVerificationResult, VerificationRun
from worker import worker as rq_worker

from .conftest import BOTH, add, run_queue
from .servers import kill_mid_step, start_worker

# Transactional: worker processes read the rows, and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


def test_it_recovers_a_step_whose_worker_was_killed(district, queue):
    so = SyncObject.objects.get(name="CourseCode")
    DistrictRecord.objects.bulk_create(
        DistrictRecord(district=district, sync_object=so, record_id=i, payload={"n": i})
        for i in range(1, 20001)
    )
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)

    # Many small chunks of the chunk path: a long step to kill in the middle of (the bulk
    # path's is one statement; tests/test_faults.py kills workers mid-step on either).
    worker = kill_mid_step(step, RESYNC_CHUNK="10", RESYNC_BULK="false")

    step.refresh_from_db()
    assert step.status == StepStatus.RUNNING and 0 < step.processed < 20000
    assert str(worker.pid) in step.worker
    assert not StateRecord.objects.exists()  # the state transaction died with the worker

    assert recovery.recover_stale_steps() == [step.pk]
    run_queue()
    step.refresh_from_db()
    assert (step.status, step.processed, step.errors, step.attempts) == (StepStatus.GREEN, 20000, 0, 2)
    assert StateRecord.objects.count() == 20000
    assert not ErrorLog.objects.exists()
    request.refresh_from_db()
    assert request.outcome == "green"


def test_it_fails_a_step_whose_worker_keeps_dying(district, queue):
    course_codes(district)  # something to move: an empty object's step ends at once
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    DISBatchHistory.objects.filter(pk=step.pk).update(
        status=StepStatus.RUNNING, worker=f"{socket.gethostname()}:{dead.pid}", attempts=3
    )
    queue.empty()
    assert recovery.recover_stale_steps() == [step.pk]
    step.refresh_from_db()
    request.refresh_from_db()
    assert step.status == StepStatus.FAILED and "died 3 times" in step.message
    assert request.outcome == "red"


def test_it_runs_workers_below_the_web_servers_cpu_priority(queue):
    import psutil

    mine = psutil.Process().nice()
    # Above this runner's own niceness, whatever a CI machine starts it at.
    target = min(mine + 5, 19)
    assert target > mine, "the test runner already runs at the lowest priority"
    worker = start_worker(burst=False, RESYNC_WORKER_NICE=str(target))
    try:
        deadline = time.monotonic() + 30
        while psutil.Process(worker.pid).nice() != target:
            assert worker.poll() is None, "the worker ended at start"
            assert time.monotonic() < deadline, "the worker never lowered its priority"
            time.sleep(0.1)
        assert psutil.Process().nice() == mine  # the process that started it keeps its own
    finally:
        worker.terminate()
        worker.wait(10)


def dead_worker() -> str:
    """host:pid of a process that has ended: a worker that died."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return f"{socket.gethostname()}:{dead.pid}"


def queued_long_ago(model, pk) -> None:
    """Queued before recovery's grace period: an enqueue that had all the time to land."""
    ago = timezone.now() - timedelta(seconds=settings.RESYNC_LOST_AFTER + 1)
    model.objects.filter(pk=pk).update(queued_at=ago)


def course_codes(district, n: int = 3) -> None:
    for rid in range(1, n + 1):
        add(district, "CourseCode", rid)


def run_burst_worker() -> None:
    """A real `manage.py rqworker --burst`: it recovers at start, then runs the queue dry."""
    worker = start_worker()
    try:
        assert worker.wait(120) == 0
    finally:
        if worker.poll() is None:
            worker.kill()


def test_it_re_enqueues_a_queued_step_whose_job_was_lost_and_the_request_finishes(district, queue):
    course_codes(district)
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)
    job_id = lifecycle.step_job_id(step.pk)
    assert queue.job_ids == [job_id]
    Job.fetch(job_id, connection=queue.connection).delete()  # Redis lost it
    queued_long_ago(DISBatchHistory, step.pk)

    out = StringIO()
    call_command("resync_recover", stdout=out)
    call_command("resync_recover", stdout=out)  # a second pass finds the job there
    assert out.getvalue().splitlines() == [
        "Recovered 1 step(s), 0 verification run(s) and 0 request(s).",
        "Recovered 0 step(s), 0 verification run(s) and 0 request(s).",
    ]
    assert queue.job_ids == [job_id]

    run_burst_worker()
    step.refresh_from_db()
    request.refresh_from_db()
    assert (step.status, step.processed, step.errors, step.attempts) == (StepStatus.GREEN, 3, 0, 1)
    assert (request.status, request.outcome) == (ResyncRequest.Status.FINISHED, "green")
    assert StateRecord.objects.count() == 3


def test_it_re_enqueues_a_step_whose_job_failed_or_left_the_queue(district, queue):
    course_codes(district)  # something to move: an empty object's step ends at once
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)
    job_id = lifecycle.step_job_id(step.pk)
    job = Job.fetch(job_id, connection=queue.connection)
    queue.remove(job)
    job.set_status(JobStatus.FAILED)  # it failed before it could claim the step
    queued_long_ago(DISBatchHistory, step.pk)
    assert recovery.recover_stale_steps() == [step.pk]
    assert queue.job_ids == [job_id]
    assert Job.fetch(job_id, connection=queue.connection).get_status() == JobStatus.QUEUED

    queue.remove(job_id)  # still "queued", but in no queue
    assert recovery.recover_stale_steps() == []  # enqueued again just now: the grace period starts over
    queued_long_ago(DISBatchHistory, step.pk)
    assert recovery.recover_stale_steps() == [step.pk]
    assert queue.job_ids == [job_id]


def test_it_does_not_double_a_queued_step_whose_job_waits_is_being_taken_or_was_just_enqueued(
    district, queue
):
    course_codes(district)
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)
    job_id = lifecycle.step_job_id(step.pk)

    queued_long_ago(DISBatchHistory, step.pk)  # waiting long, its job still in the queue
    assert recovery.recover_stale_steps() == []
    assert queue.job_ids == [job_id]

    # Being taken: a worker moved it to the intermediate queue and has not marked it started.
    queue.connection.lmove(queue.key, queue.intermediate_queue_key)
    assert queue.job_ids == []
    assert recovery.recover_stale_steps() == []
    assert queue.job_ids == []
    queue.connection.delete(queue.intermediate_queue_key)

    # Just queued, its job not in Redis yet (an enqueue lands once its transaction
    # commits): recovery waits rather than enqueue it a second time.
    queue.empty()
    DISBatchHistory.objects.filter(pk=step.pk).update(queued_at=timezone.now())
    assert recovery.recover_stale_steps() == []
    assert queue.job_ids == []


def test_it_runs_a_step_once_when_its_job_is_queued_twice(district, queue, caplog):
    course_codes(district)
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)
    queue.push_job_id(lifecycle.step_job_id(step.pk))
    assert len(queue.job_ids) == 2

    with caplog.at_level(logging.INFO, logger="runner.lifecycle"):
        run_queue()
    step.refresh_from_db()
    assert (step.status, step.processed, step.attempts) == (StepStatus.GREEN, 3, 1)
    assert f"step {step.pk} is not queued any more; skipping" in caplog.messages  # claim() refused it


def test_it_recovers_a_verification_whose_worker_died_and_it_finishes(district, queue):
    course_codes(district)
    run = verify.do_request_verification(verify.check_verification(district, None, ["CourseCode"]))
    # A worker took it, compared part of it, and died: its job stays "started".
    job = Job.fetch(verify.run_job_id(run.pk), connection=queue.connection)
    queue.remove(job)
    job.set_status(JobStatus.STARTED)
    course = SyncObject.objects.get(name="CourseCode")
    VerificationRun.objects.filter(pk=run.pk).update(
        status=VerificationRun.Status.RUNNING,
        worker=dead_worker(),
        heartbeat_at=timezone.now(),
        attempts=1,
        objects_done=0,
        records_compared=2,
    )
    DISVerificationResult.objects.create(run=run, sync_object=course, only_district=2)

    run_burst_worker()  # recovers at start, then runs it
    run.refresh_from_db()
    assert (run.status, run.message, run.attempts, run.objects_done, run.records_compared) == (
        VerificationRun.Status.FINISHED,
        "",
        2,
        1,
        3,
    )
    assert list(DISVerificationResult.objects.filter(run=run).values_list("only_district", "matching")) == [
        (3, 0)
    ]


def test_it_re_enqueues_a_queued_verification_whose_job_was_lost(district, queue):
    course_codes(district)
    run = verify.do_request_verification(verify.check_verification(district, None, ["CourseCode"]))
    queue.empty()  # Redis restarted without persistence
    queued_long_ago(VerificationRun, run.pk)
    assert rq_worker.recover() == ([], [run.pk], [])
    assert rq_worker.recover() == ([], [], [])
    assert queue.job_ids == [verify.run_job_id(run.pk)]
    run_queue()
    run.refresh_from_db()
    assert (run.status, run.attempts, run.records_compared) == (VerificationRun.Status.FINISHED, 1, 3)


def test_it_fails_a_verification_whose_worker_keeps_dying_with_the_reason(district, queue):
    alice = User.objects.create_user("alice")
    run = verify.do_request_verification(verify.check_verification(district, None, ["CourseCode"]))
    VerificationRun.objects.filter(pk=run.pk).update(
        status=VerificationRun.Status.RUNNING,
        worker=dead_worker(),
        attempts=runner_jobs.MAX_ATTEMPTS,
        requested_by=alice,
    )
    queue.empty()
    out = StringIO()
    call_command("resync_recover", stdout=out)
    assert out.getvalue() == "Recovered 0 step(s), 1 verification run(s) and 0 request(s).\n"
    run.refresh_from_db()
    assert run.status == VerificationRun.Status.FAILED
    assert run.message.startswith("The worker died 3 times while running this verification")
    assert run.worker == "" and run.finished_at is not None
    alert = ProcessAlert.objects.get(user=alice)
    assert "failed: The worker died 3 times" in alert.message
    assert queue.job_ids == []


def wait_for(condition, seconds: float, what: str, worker=None) -> None:
    """Poll `condition` until it holds; fail naming `what` after `seconds` (or if `worker` ended)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert worker is None or worker.poll() is None, f"the worker ended while waiting for {what}"
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.1)


def finished(request) -> bool:
    request.refresh_from_db()
    return request.status == ResyncRequest.Status.FINISHED


def stop(worker) -> None:
    worker.terminate()
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)
        pytest.fail("the worker did not stop on SIGTERM")


def test_it_re_enqueues_a_lost_job_from_an_idle_workers_periodic_check(district, queue):
    """Issue 11, item 8: a job Redis lost waited for RQ's 10-minute maintenance."""
    course_codes(district)
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    queue.empty()  # Redis lost it before any worker took it
    # The worker's check at start finds it queued too recently to call its job lost;
    # only its periodic check can.
    worker = start_worker(burst=False, RESYNC_RECOVER_EVERY="1", RESYNC_LOST_AFTER="3")
    try:
        wait_for(lambda: finished(request), 60, "the request finished", worker)
    finally:
        stop(worker)
    step = DISBatchHistory.objects.get(request=request)
    assert (step.status, step.processed, step.attempts) == (StepStatus.GREEN, 3, 1)
    assert request.outcome == "green"


def test_it_logs_a_failed_recovery_check_and_stops_on_request_during_one(monkeypatch, caplog):
    import django_rq
    from rq.exceptions import StopRequested

    from worker.worker import ResyncWorker

    worker = django_rq.get_worker(settings.RQ_QUEUE)
    assert isinstance(worker, ResyncWorker)

    def database_down():
        raise RuntimeError("the database is down")

    # RQ's loop quits on any exception: a failed check must not end the worker.
    monkeypatch.setattr(rq_worker, "recover", database_down)
    with caplog.at_level(logging.ERROR, logger="worker.worker"):
        worker.recover()
    assert caplog.messages == [
        f"recovery failed; the next check in {settings.RESYNC_RECOVER_EVERY}s tries again"
    ]

    # SIGTERM while idle raises StopRequested wherever the worker is: that is RQ's
    # warm shutdown, and swallowing it kept the worker running after a SIGTERM.
    def stop_requested():
        raise StopRequested()

    monkeypatch.setattr(rq_worker, "recover", stop_requested)
    with pytest.raises(StopRequested):
        worker.recover()


def backends_of_others() -> list[int]:
    """The PostgreSQL backends of this run's two databases that are not this test's own."""
    from django.db import connections

    mine, names = [], []
    for alias in BOTH:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), current_database()")
            pid, name = cursor.fetchone()
            mine.append(pid)
            names.append(name)
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND NOT pid = ANY(%s)", [names, mine]
        )
        return [r[0] for r in cursor.fetchall()]


def terminate(pids: list[int]) -> None:
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])


def test_it_requeues_a_step_whose_database_connections_were_cut_and_the_worker_goes_on(district, queue):
    """Issue 11, item 7: a worker whose backends were terminated kept the step 'running'
    for minutes, and failed every later job with 'connection already closed'."""
    from django.db import connections

    if connections["default"].vendor != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's; SQLite has no server connections to cut")
    so = SyncObject.objects.get(name="CourseCode")
    DistrictRecord.objects.bulk_create(
        DistrictRecord(district=district, sync_object=so, record_id=i, payload={"n": i})
        for i in range(1, 20001)
    )
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)
    # RQ's own maintenance and the periodic check stay out of the way: the requeue
    # must come from the interrupted job itself, at once.
    worker = start_worker(burst=False, RESYNC_CHUNK="10", RESYNC_RECOVER_EVERY="600", RESYNC_BULK="false")
    try:

        def mid_step() -> bool:
            step.refresh_from_db()
            return step.status == StepStatus.RUNNING and step.processed > 0

        wait_for(mid_step, 60, "the step reported progress", worker)
        cut = backends_of_others()
        assert cut, "the worker holds no connection to cut"
        terminate(cut)
        wait_for(
            lambda: finished(request), 60, "the interrupted step ran again and the request finished", worker
        )
        step.refresh_from_db()
        assert (step.status, step.processed, step.errors, step.attempts) == (StepStatus.GREEN, 20000, 0, 2)
        assert step.worker == f"{socket.gethostname()}:{worker.pid}"  # the same worker ran it again
        assert StateRecord.objects.count() == 20000

        # And the next job on the same worker runs on fresh connections.
        DistrictRecord.objects.filter(record_id__gt=10).delete()
        again = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
        wait_for(lambda: finished(again), 60, "the next request finished", worker)
        (next_step,) = DISBatchHistory.objects.filter(request=again)
        assert (next_step.status, next_step.processed, next_step.message) == (StepStatus.GREEN, 10, "")
        assert next_step.worker == step.worker
        assert StateRecord.objects.count() == 10
    finally:
        stop(worker)


def test_it_recovers_at_once_a_verification_whose_job_ended_without_ending_it(district, queue, monkeypatch):
    """A job that raises where even its failure cannot be written (its connection cut)
    left its run 'running' on a live worker until the heartbeat went stale (5 minutes):
    the worker now sees its own orphan as soon as the job ends."""
    from django.db import OperationalError

    course_codes(district)
    run = verify.do_request_verification(verify.check_verification(district, None, ["CourseCode"]))

    def connection_cut(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    finish = verify.do_finish_run

    def finish_unless_in_the_job(*args, **kwargs):
        # Inside the job its connection is cut; recovery, after it, has a fresh one.
        if runner_jobs.job_running_here:
            connection_cut()
        return finish(*args, **kwargs)

    monkeypatch.setattr(verify, "run_verification", connection_cut)
    monkeypatch.setattr(verify, "do_finish_run", finish_unless_in_the_job)
    run_queue()  # each attempt is queued again at once, on this same worker, then failed
    run.refresh_from_db()
    assert (run.status, run.attempts, run.worker) == (
        VerificationRun.Status.FAILED,
        runner_jobs.MAX_ATTEMPTS,
        "",
    )
    assert run.message.startswith("The worker died 3 times")


def test_it_requeues_a_step_that_lost_its_connection_up_to_three_times_then_fails_it(
    district, queue, monkeypatch
):
    from django.db import OperationalError

    course_codes(district)
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)

    def connection_cut(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(lifecycle, "move_records", connection_cut)
    run_queue()  # each interrupted attempt is enqueued again at once by the same worker
    step.refresh_from_db()
    request.refresh_from_db()
    assert (step.status, step.attempts, step.worker) == (StepStatus.FAILED, runner_jobs.MAX_ATTEMPTS, "")
    assert step.message == (
        "The database connection was lost 3 times while running this step: "
        "OperationalError: terminating connection due to administrator command"
    )
    assert (request.status, request.outcome) == (ResyncRequest.Status.FINISHED, "red")
