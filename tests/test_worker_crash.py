"""A worker killed with SIGKILL in the middle of a step leaves nothing half-written."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync import actions
from resync.models import DistrictRecord, StateRecord, SyncObject

from .conftest import BOTH, run_queue
from .servers import start_worker

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


def test_it_recovers_a_step_whose_worker_was_killed(district, queue):
    so = SyncObject.objects.get(name="CourseCode")
    DistrictRecord.objects.bulk_create(
        DistrictRecord(district=district, sync_object=so, record_id=i, payload={"n": i})
        for i in range(1, 20001)
    )
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)

    worker = start_worker(RESYNC_CHUNK="10")  # many small chunks: a long step to kill in the middle of
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            step.refresh_from_db()
            if step.status == StepStatus.RUNNING and step.processed > 0:  # a progress write: mid-step
                break
            assert worker.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the step never reported progress")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()

    step.refresh_from_db()
    assert step.status == StepStatus.RUNNING and 0 < step.processed < 20000
    assert str(worker.pid) in step.worker
    assert not StateRecord.objects.exists()  # the state transaction died with the worker

    assert actions.recover_stale_steps() == [step.pk]
    run_queue()
    step.refresh_from_db()
    assert (step.status, step.processed, step.errors, step.attempts) == (StepStatus.GREEN, 20000, 0, 2)
    assert StateRecord.objects.count() == 20000
    assert not ErrorLog.objects.exists()
    request.refresh_from_db()
    assert request.outcome == "green"


def test_it_fails_a_step_whose_worker_keeps_dying(district, queue):
    request = actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))
    step = DISBatchHistory.objects.get(request=request)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    DISBatchHistory.objects.filter(pk=step.pk).update(
        status=StepStatus.RUNNING, worker=f"{socket.gethostname()}:{dead.pid}", attempts=3
    )
    queue.empty()
    assert actions.recover_stale_steps() == [step.pk]
    step.refresh_from_db()
    request.refresh_from_db()
    assert step.status == StepStatus.FAILED and "died 3 times" in step.message
    assert request.outcome == "red"


def test_it_runs_workers_below_the_web_servers_cpu_priority(queue):
    import psutil

    mine = psutil.Process().nice()
    worker = start_worker(burst=False, RESYNC_WORKER_NICE="7")
    try:
        deadline = time.monotonic() + 30
        while psutil.Process(worker.pid).nice() != 7:
            assert worker.poll() is None, "the worker ended at start"
            assert time.monotonic() < deadline, "the worker never lowered its priority"
            time.sleep(0.1)
        assert psutil.Process().nice() == mine < 7  # the process that started it keeps its own
    finally:
        worker.terminate()
        worker.wait(10)
