"""A one-job request runs each layer's steps side by side on its worker's lanes
(runner.lanes, RESYNC_JOB_LANES): the same results as one step at a time, every step
once, and no connection left open when the worker stops."""

import threading
import time

import pytest
from django.db import connection
from django.test import override_settings

from resync.models import ResyncRequest, StateRecord
from runner import lanes, lifecycle

from .conftest import BOTH, run_queue
from .test_one_job import ONE_JOB, resync
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
    run_step = lifecycle.run_step

    def spy(step_id, **kwargs):
        threads.add(threading.current_thread().name)
        return run_step(step_id, **kwargs)

    monkeypatch.setattr(lifecycle, "run_step", spy)
    with ONE_JOB, override_settings(RESYNC_JOB_LANES=2):
        side_by_side = resync(district)
        run_queue()
    assert any(name.startswith("resync-lane") for name in threads), threads
    got = results(side_by_side)
    for name, processed in expected.processed.items():
        assert got[name][:2] == (processed, expected.errors[name]), name
    rows = state_rows(district)
    assert ResyncRequest.objects.get(pk=side_by_side.pk).status == ResyncRequest.Status.FINISHED
    # The worker stopped (burst): its lanes' connections went with it.
    assert backends_of_others() == []

    StateRecord.objects.all().delete()
    threads.clear()
    with ONE_JOB, override_settings(RESYNC_JOB_LANES=1):
        one_lane = resync(district)
        run_queue()
    assert not any(name.startswith("resync-lane") for name in threads), threads
    assert results(one_lane) == got
    assert state_rows(district) == rows


def test_it_refuses_lanes_on_sqlite():
    result = _start({"RESYNC_JOB_LANES": "2"})
    assert result.returncode != 0
    assert "RESYNC_JOB_LANES=2 needs PostgreSQL on both sides" in result.stderr
