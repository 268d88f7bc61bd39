"""Issue 11, item 6: a request created while the running one of its district and year
finishes must not be left waiting with nothing running.

The race needs two transactions interleaved on PostgreSQL; SQLite takes its
write lock when a transaction begins (transaction_mode IMMEDIATE), so there the
two cannot interleave at all.
"""

import threading
import time

import pytest
from django.db import connections, transaction
from django.utils import timezone

from history.models import DISBatchHistory, StepStatus
from resync.models import ResyncRequest
from runner import lifecycle, recovery
from tool import actions

from .conftest import BOTH, add

# Transactional: threads and a worker read the rows while a step runs, and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


def resync(district):
    return actions.do_request_resync(actions.check_resync(district, None, ["CourseCode"], False))


def waits_on_a_lock(database: str) -> bool:
    """Does a backend of `database` wait on a lock? Asked on the state side's connection,
    outside the district side's transaction (whose snapshot of pg_stat_activity is frozen)."""
    with connections["state"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            [database],
        )
        return cursor.fetchone()[0] > 0


def test_it_starts_a_request_created_while_the_running_one_finishes(district, queue):
    if connections["default"].vendor != "postgresql":
        pytest.skip("SQLite serialises every write transaction from its BEGIN: the race cannot happen there")
    for rid in (1, 2, 3):
        add(district, "CourseCode", rid)
    first = resync(district)
    step = DISBatchHistory.objects.get(request=first)
    assert lifecycle.claim(step.pk, "elsewhere:1") is not None  # a worker runs the last step
    queue.empty()

    ended, failures = threading.Event(), []

    def finish_the_step() -> None:
        try:
            running = DISBatchHistory.objects.select_related("request", "sync_object").get(pk=step.pk)
            running.processed = 3
            lifecycle.finish_step(running)
        except BaseException as e:  # handed to the test's thread
            failures.append(e)
        finally:
            connections.close_all()
            ended.set()

    database = connections["default"].settings_dict["NAME"]
    finisher = threading.Thread(target=finish_the_step)
    with transaction.atomic():
        # The new request is stored and has decided to wait for `first`; its
        # transaction (and the district's lock) is still open.
        second = resync(district)
        assert ResyncRequest.objects.get(pk=second.pk).status == ResyncRequest.Status.WAITING
        finisher.start()
        # The finishing step runs as far as it can meanwhile: to its end (it did not
        # wait for the new request's transaction) or until it waits on its lock.
        deadline = time.monotonic() + 30
        while not (ended.is_set() or waits_on_a_lock(database)):
            assert time.monotonic() < deadline, "the finishing step neither ended nor waited"
            time.sleep(0.01)
    finisher.join(30)
    assert not finisher.is_alive() and not failures

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.outcome) == (ResyncRequest.Status.FINISHED, "green")
    assert second.status == ResyncRequest.Status.RUNNING
    (queued,) = DISBatchHistory.objects.filter(request=second)
    assert queued.status == StepStatus.QUEUED
    assert queue.job_ids == [lifecycle.step_job_id(queued.pk)]


def test_it_starts_from_recovery_a_request_that_waits_with_nothing_running(district, other_district, queue):
    for d in (district, other_district):
        add(d, "CourseCode", 1)
    first = resync(district)
    second, third = resync(district), resync(district)
    # Its wake-up was lost: the first finished without starting the others.
    ResyncRequest.objects.filter(pk=first.pk).update(status=ResyncRequest.Status.FINISHED)
    DISBatchHistory.objects.filter(request=first).update(status=StepStatus.GREEN, ended_at=timezone.now())
    busy = resync(other_district)  # another district's running request changes nothing here
    queue.empty()

    assert recovery.recover_requests() == [second.pk]
    assert recovery.recover_requests() == []  # the second runs now: the third waits for it
    second.refresh_from_db()
    third.refresh_from_db()
    busy.refresh_from_db()
    assert (second.status, third.status) == (ResyncRequest.Status.RUNNING, ResyncRequest.Status.WAITING)
    assert busy.status == ResyncRequest.Status.RUNNING
    step = DISBatchHistory.objects.get(request=second)
    assert queue.job_ids == [lifecycle.step_job_id(step.pk)]


def test_it_advances_from_recovery_a_running_request_whose_queued_step_is_gone(district, queue):
    add(district, "District", 1)
    add(district, "School", 1, {"District": 1})
    first = actions.do_request_resync(actions.check_resync(district, None, ["District", "School"], False))
    parent = DISBatchHistory.objects.get(request=first, sync_object__name="District")
    child = DISBatchHistory.objects.get(request=first, sync_object__name="School")
    waiting = actions.do_request_resync(actions.check_resync(district, None, ["District"], False))
    # The queued step's row is deleted underneath its request (raw SQL: no model code runs).
    with connections["default"].cursor() as cursor:
        cursor.execute('DELETE FROM "DISBatchHistory" WHERE id = %s', [parent.pk])
    queue.empty()

    assert recovery.recover_requests() == [first.pk]  # on to the next layer
    child.refresh_from_db()
    assert child.status == StepStatus.QUEUED
    assert queue.job_ids == [lifecycle.step_job_id(child.pk)]
    assert recovery.recover_requests() == []  # its step is queued: nothing to do
    DISBatchHistory.objects.filter(pk=child.pk).delete()
    assert recovery.recover_requests() == [first.pk]  # it finishes, and starts the next one
    first.refresh_from_db()
    waiting.refresh_from_db()
    assert (first.status, waiting.status) == (ResyncRequest.Status.FINISHED, ResyncRequest.Status.RUNNING)
