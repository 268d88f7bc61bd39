"""A load and a resync of the same district and object never interleave (issue 13):
a running step sees a load all or not at all.

The load's merge and a step's claim both take the District row lock, and the merge
waits while a step that reads its records runs (loads.actions.running_readers).
These tests hold one side at a hook (events, not sleeps) while the other runs on
a thread of its own, on committed rows, on SQLite and on PostgreSQL alike.
"""

import threading

import pytest
from django.db import connections

from history.models import DISBatchHistory, StepStatus
from loads import actions as loads
from loads import staging
from resync.models import DistrictRecord, StateRecord
from runner import engine, lifecycle
from tool import actions

from .conftest import BOTH, COMMITTED, add, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
IDS = range(1, 7)


def resync(district, objects):
    return actions.do_request_resync(actions.check_resync(district, None, objects, False))


def course_rows(title: str):
    return [(n, {"record_id": n, "code": f"C{n}", "title": title}) for n in IDS]


def titles(district) -> set:
    rows = StateRecord.objects.filter(district_code=district.code, sync_object="CourseCode")
    return {r.payload["title"] for r in rows}


def in_thread(target) -> tuple[threading.Thread, dict]:
    """Run target() on a thread with its own connections; its return value lands in out."""
    out = {}

    def run():
        try:
            out["value"] = target()
        except BaseException as e:  # told to the test, which asserts on it
            out["error"] = e
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@COMMITTED
def test_it_makes_a_load_wait_for_the_running_step_which_sees_none_of_it(
    district, queue, settings, monkeypatch, python_path
):
    # The chunk path reads a step's records in several statements (the bulk path in one COPY).
    for n in IDS:
        add(district, "CourseCode", n, payload={"code": f"C{n}", "title": "old"})
    settings.RESYNC_CHUNK = 2  # three chunks: the load tries to land between two
    checked = loads.check_load(district, "CourseCode", None)
    waiting, step_ended = threading.Event(), threading.Event()
    started = {}

    def wait(step):
        started["running"] = step.pk
        waiting.set()
        assert step_ended.wait(30)

    monkeypatch.setattr(loads, "_wait", wait)
    real = engine.chunks

    def chunks(qs, size):
        for number, rows in enumerate(real(qs, size)):
            yield rows
            if number == 0:  # the first chunk is judged: load the file now
                started["load"] = in_thread(lambda: loads.do_load(checked, course_rows("new")))
                thread = started["load"][0]
                while not waiting.is_set() and thread.is_alive():
                    waiting.wait(0.05)

    monkeypatch.setattr(engine, "chunks", chunks)
    request = resync(district, ["CourseCode"])
    run_queue()
    step = DISBatchHistory.objects.get(request=request, sync_object__name="CourseCode")

    assert step.status == StepStatus.GREEN
    assert started["running"] == step.pk  # the load waited for this step
    assert titles(district) == {"old"}  # all of the step's chunks read the records before the load
    step_ended.set()
    thread, out = started["load"]
    thread.join(30)
    assert "error" not in out
    assert out["value"].written and out["value"].updated == len(IDS)

    monkeypatch.setattr(engine, "chunks", real)
    resync(district, ["CourseCode"])
    run_queue()
    assert titles(district) == {"new"}  # and the next one reads all of the load


@COMMITTED
def test_it_starts_a_step_claimed_during_a_merge_after_the_merge(district, queue, settings, monkeypatch):
    for n in IDS:
        add(district, "CourseCode", n, payload={"code": f"C{n}", "title": "old"})
    request = resync(district, ["CourseCode"])
    step = DISBatchHistory.objects.get(request=request, sync_object__name="CourseCode")
    checked = loads.check_load(district, "CourseCode", None)
    merging, go = threading.Event(), threading.Event()
    real = staging.write

    def write(*args):
        written = real(*args)  # written, not committed: the District row is locked
        merging.set()
        assert go.wait(30)
        return written

    monkeypatch.setattr(staging, "write", write)
    load, loaded = in_thread(lambda: loads.do_load(checked, course_rows("new")))
    assert merging.wait(30)
    claim, claimed = in_thread(lambda: lifecycle.claim(step.pk, "w1"))
    if connections["default"].vendor == "postgresql":
        # The claim waits on the District row lock (SQLite: on its write lock, which
        # the merge's IMMEDIATE transaction holds).
        with connections["default"].cursor() as cursor:
            while claim.is_alive():
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = %s AND datname = current_database()",
                    ["Lock"],
                )
                if cursor.fetchone()[0]:
                    break
    assert DISBatchHistory.objects.get(pk=step.pk).status == StepStatus.QUEUED
    go.set()
    load.join(30)
    claim.join(30)
    assert loaded["value"].written and "error" not in claimed
    # Claimed after the merge committed: it reads every record as the load left it.
    assert claimed["value"].status == StepStatus.RUNNING
    assert set(
        DistrictRecord.objects.filter(district=district, sync_object__name="CourseCode").values_list(
            "payload__title", flat=True
        )
    ) == {"new"}


def test_it_refuses_a_load_while_a_step_of_its_object_keeps_running(district, monkeypatch):
    for n in IDS:
        add(district, "CourseCode", n, payload={"code": f"C{n}", "title": "old"})
    request = resync(district, ["CourseCode"])
    step = DISBatchHistory.objects.get(request=request, sync_object__name="CourseCode")
    DISBatchHistory.objects.filter(pk=step.pk).update(status=StepStatus.RUNNING)
    monkeypatch.setattr(loads, "WAIT", 0)

    result = loads.do_load(loads.check_load(district, "CourseCode", None), course_rows("new"))

    assert not result.written and result.inserted == result.updated == 0
    (problem,) = result.problems
    assert f"resync step {step.pk} (CourseCode" in problem.message
    assert "nothing was written" in problem.message
    assert set(
        DistrictRecord.objects.filter(district=district, sync_object__name="CourseCode").values_list(
            "payload__title", flat=True
        )
    ) == {"old"}
    # A dry run (the admin's preview) keeps nothing: it counts without waiting.
    preview = loads.do_load(loads.check_load(district, "CourseCode", None), course_rows("new"), dry_run=True)
    assert preview.problems == [] and preview.updated == len(IDS) and not preview.written


def test_it_lets_a_load_through_while_only_other_objects_steps_run(district, monkeypatch):
    request = resync(district, ["CourseCode"])
    DISBatchHistory.objects.filter(request=request).update(status=StepStatus.RUNNING)
    DISBatchHistory.objects.filter(request=request, sync_object__name="CourseCode").update(
        status=StepStatus.GREEN
    )
    monkeypatch.setattr(loads, "WAIT", 0)
    checked = loads.check_load(district, "CourseCode", None)
    assert loads.running_readers(checked) is None
    assert loads.do_load(checked, course_rows("new")).written


@COMMITTED
def test_it_stages_a_long_file_without_holding_the_write_lock(district):
    # While the file is read and staged another connection writes the district's
    # database: on SQLite it would wait for the load's whole file if staging held the lock.
    checked = loads.check_load(district, "CourseCode", None)
    rows = [(n, {"record_id": n, "code": "C", "title": "t"}) for n in range(1, loads.BATCH + 2)]
    wrote = []

    def progress(read):
        thread, out = in_thread(
            lambda: DistrictRecord.objects.filter(district=district).update(state_excluded=False)
        )
        thread.join(60)
        wrote.append(out)

    result = loads.do_load(checked, rows, on_progress=progress)

    assert result.written and result.inserted == loads.BATCH + 1
    assert wrote and all("error" not in out for out in wrote)
