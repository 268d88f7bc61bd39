"""Fault injection: a full resync of a demo district on real worker processes, a fault
in the middle of it, and then nothing but the workers themselves.

Each scenario ends, within two minutes of its fault and with no manual command,
with every request finished and the state holding exactly the district's records
less the ones refused (the Error Log of the request's steps), checked by SQL
written here, not through the engine. The workers check for recovery every
second (RESYNC_RECOVER_EVERY) and call a job lost after two (RESYNC_LOST_AFTER)
so the suite stays short; in production those are 15 and 30 seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager

import django_rq
import pytest
from django.conf import settings
from django.db import connections

from history.models import FINISHED, DISBatchHistory, ErrorLog, StepStatus
from resync.models import DistrictRecord, ResyncRequest, StateRecord, SyncObject
from tool import actions

from .conftest import BOTH
from .servers import start_worker

# Transactional: worker processes run the steps while the test cuts their connections and Redis.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

# Small chunks: the demo district's steps last long enough to be hit in the middle.
FAST = {"RESYNC_RECOVER_EVERY": "1", "RESYNC_LOST_AFTER": "2", "RESYNC_CHUNK": "2"}
WITHIN = 120  # seconds from the fault to every request finished


@contextmanager
def workers(count: int, **extra: str):
    procs = [start_worker(burst=False, **FAST, **extra) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def full_resync(district) -> ResyncRequest:
    return actions.do_request_resync(actions.check_resync(district, None, None, False))


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.02)
    return found


def a_step_mid_way() -> DISBatchHistory | None:
    """A step a worker is running and has reported progress on."""
    return DISBatchHistory.objects.filter(status=StepStatus.RUNNING, processed__gt=0).first()


def settle(fault_at: float) -> float:
    """Wait until every request and step has finished; seconds since the fault."""

    def done() -> bool:
        return not (
            ResyncRequest.objects.exclude(status=ResyncRequest.Status.FINISHED).exists()
            or DISBatchHistory.objects.exclude(status__in=FINISHED).exists()
        )

    wait_for(done, WITHIN - (time.monotonic() - fault_at), "every request finished after the fault")
    return time.monotonic() - fault_at


def rows(alias: str, sql: str, params: list) -> set[tuple]:
    """(object, record id, school year, payload) rows, payloads compared as JSON values."""
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return {
            (obj, rid, year, json.dumps(json.loads(p) if isinstance(p, str) else p, sort_keys=True))
            for obj, rid, year, p in cursor.fetchall()
        }


def district_less_refused(district, request: ResyncRequest) -> set[tuple]:
    """The district's records of the objects the request ran, less those its steps
    refused (their Error Log), for the request's year where the object is year-scoped."""
    q = connections["default"].ops.quote_name
    records, objects = q(DistrictRecord._meta.db_table), q(SyncObject._meta.db_table)
    steps, errors = q(DISBatchHistory._meta.db_table), q(ErrorLog._meta.db_table)
    return rows(
        "default",
        f"SELECT o.name, r.record_id, r.school_year, r.payload FROM {records} r "
        f"JOIN {objects} o ON o.id = r.sync_object_id "
        "WHERE r.district_id = %s AND (o.year_scoped = %s OR r.school_year = %s) "
        f"AND EXISTS (SELECT 1 FROM {steps} s WHERE s.request_id = %s AND s.sync_object_id = o.id) "
        f"AND NOT EXISTS (SELECT 1 FROM {errors} e JOIN {steps} s ON s.id = e.step_id "
        "WHERE s.request_id = %s AND e.sync_object_id = r.sync_object_id AND e.record_id = r.record_id)",
        [district.pk, False, request.school_year, request.pk, request.pk],
    )


def at_state(district) -> set[tuple]:
    q = connections["state"].ops.quote_name
    return rows(
        "state",
        f"SELECT sync_object, record_id, school_year, payload FROM {q(StateRecord._meta.db_table)} "
        "WHERE district_code = %s",
        [district.code],
    )


def assert_converged(district, request: ResyncRequest, expected=None) -> None:
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED
    want = district_less_refused(district, request)
    assert want, "the comparison compares nothing"
    got = at_state(district)
    assert not (want - got), f"missing at the state: {sorted(want - got)[:5]}"
    assert not (got - want), f"at the state but not allowed: {sorted(got - want)[:5]}"
    if expected is not None:  # and the generator's own count of what it planted to fail
        steps = DISBatchHistory.objects.filter(request=request).select_related("sync_object")
        got_counts = {s.sync_object.name: (s.processed, s.errors) for s in steps if s.processed}
        assert got_counts == {o: (n, expected.errors[o]) for o, n in expected.processed.items()}
        assert not steps.filter(status=StepStatus.FAILED).exists()


def test_it_converges_after_a_worker_is_killed_mid_step(demo_district, queue):
    district, expected = demo_district
    with workers(2) as procs:
        request = full_resync(district)
        for _attempt in range(5):
            seen = wait_for(a_step_mid_way, 60, "a step mid-way")
            victim = next(p for p in procs if seen.worker == f"{socket.gethostname()}:{p.pid}")
            name = f"{socket.gethostname()}:{victim.pid}"
            os.kill(victim.pid, signal.SIGKILL)
            fault_at = time.monotonic()
            victim.wait(10)
            # What it ran when it died: the step seen mid-way may have ended just before
            # the kill. Asked at once, before the other worker's recovery (every second).
            cut = DISBatchHistory.objects.filter(status=StepStatus.RUNNING, worker=name).first()
            if cut is not None:
                break
            procs.append(start_worker(burst=False, **FAST))  # it died between two steps: again
        else:
            pytest.fail("five kills all landed between two steps")
        settle(fault_at)
    cut.refresh_from_db()
    assert cut.attempts == 2 and cut.worker != name
    assert_converged(district, request, expected)


def test_it_converges_after_redis_loses_everything_mid_resync(demo_district, queue):
    district, expected = demo_district
    queued = DISBatchHistory.objects.filter(status=StepStatus.QUEUED)
    with workers(1):  # one worker: the rest of a layer waits in the queue
        request = full_resync(district)
        wait_for(lambda: queued.exists() and a_step_mid_way(), 60, "a step mid-way and others queued")
        # FLUSHDB on this run's own Redis database: every queued job, registry and worker key goes.
        django_rq.get_connection(settings.RQ_QUEUE).flushdb()
        fault_at = time.monotonic()
        settle(fault_at)
    assert_converged(district, request, expected)


def test_it_converges_after_the_workers_database_connections_are_cut_mid_step(demo_district, queue):
    if connections["default"].vendor != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's; SQLite has no server connections to cut")
    district, expected = demo_district
    with workers(2) as procs:
        request = full_resync(district)
        step = wait_for(a_step_mid_way, 60, "a step mid-way")
        mine = []
        for alias in BOTH:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                mine.append(cursor.fetchone()[0])
        names = [connections[alias].settings_dict["NAME"] for alias in BOTH]
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = ANY(%s) AND NOT pid = ANY(%s)",
                [names, mine],
            )
            assert cursor.fetchall(), "the workers hold no connection to cut"
        fault_at = time.monotonic()
        settle(fault_at)
        assert all(p.poll() is None for p in procs), "a worker died of its cut connections"
    step.refresh_from_db()
    assert step.status != StepStatus.FAILED
    assert_converged(district, request, expected)


def test_it_converges_after_a_queued_steps_history_is_deleted(demo_district, queue):
    district, _expected = demo_district
    request = full_resync(district)

    def last_queued_of_its_layer() -> DISBatchHistory | None:
        """The one step still queued in a layer of several: its own end would have moved
        the request on, and nothing else will."""
        jobs = queue.job_ids
        if len(jobs) != 1:
            return None
        step = DISBatchHistory.objects.get(pk=int(jobs[0].removeprefix("step-")))
        return step if DISBatchHistory.objects.filter(request=request, layer=step.layer).count() > 1 else None

    # Before the fault, this test runs the steps itself, one job at a time, until then.
    while (step := last_queued_of_its_layer()) is None:
        job = queue.get_jobs()[0]
        queue.remove(job)
        job.perform()
    table = connections["default"].ops.quote_name(DISBatchHistory._meta.db_table)
    with connections["default"].cursor() as cursor:
        # Raw SQL: no model code runs (the admin and the API refuse this).
        cursor.execute(f"DELETE FROM {table} WHERE id = %s AND status = %s", [step.pk, StepStatus.QUEUED])
        assert cursor.rowcount == 1
    fault_at = time.monotonic()
    with workers(1):
        settle(fault_at)
    assert not DISBatchHistory.objects.filter(pk=step.pk).exists()
    # The request ran without the deleted step: its object is compared as never sent
    # (and its children's records, their parent missing at the state, as refused).
    assert_converged(district, request)
