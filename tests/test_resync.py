"""Resyncs through the real path: actions -> RQ on the real Redis -> engine -> both databases."""

from collections import Counter

import pytest

from core.errors import ResyncError
from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync.models import DistrictRecord, ResyncRequest, StateRecord
from resync.rules import Reason
from runner import engine, lifecycle
from tool import actions

from .conftest import BOTH, COMMITTED, add, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose requests a worker runs (run_queue or resync_run), or that read the RQ queue
# (a job is enqueued on commit).


def resync(district, objects=None, check_dependencies=False, year=None, level="district"):
    checked = actions.check_resync(district, year, objects, check_dependencies, level=level)
    return actions.do_request_resync(checked)


def results(request) -> dict:
    return {
        s.sync_object.name: (s.processed, s.errors, s.status)
        for s in DISBatchHistory.objects.filter(request=request).select_related("sync_object")
    }


def state_rows(district) -> set:
    return {
        (r.sync_object, r.record_id, str(r.payload), str(r.parent_ids))
        for r in StateRecord.objects.filter(district_code=district.code)
    }


@COMMITTED
def test_it_counts_what_the_generator_planted_and_a_second_run_changes_nothing(demo_district, queue):
    district, expected = demo_district
    request = resync(district)
    run_queue()
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED
    got = results(request)
    for obj, processed in expected.processed.items():
        assert got[obj][:2] == (processed, expected.errors[obj]), obj
    assert sum(p for p, _e, _s in got.values()) == DistrictRecord.objects.filter(district=district).count()
    reasons = set(ErrorLog.objects.values_list("reason", flat=True))
    assert reasons == {
        Reason.STATE_EXCLUDED,
        Reason.TEST_NO_CODE,
        Reason.TEST_UNPUBLISHED,
        Reason.TEST_NO_DATE,
        Reason.OUT_OF_SCOPE,
        Reason.TEST_LOCKED,
        Reason.NOT_ENROLLED,
    }
    sent = sum(p - e for p, e, _s in got.values())
    assert StateRecord.objects.filter(district_code=district.code).count() == sent
    before = state_rows(district)

    again = resync(district)
    run_queue()
    assert results(again) == got
    assert state_rows(district) == before
    assert ErrorLog.objects.filter(step__request=again).count() == sum(expected.errors.values())


@COMMITTED
def test_it_colours_exactly_one_percent_yellow(district, queue):
    chain(district)
    for i in range(1, 101):
        add(district, "Enrollment", i, {"PersonIdentity": 1}, {"end_date": None}, excluded=i == 1)
    request = resync(district, ["Enrollment"], check_dependencies=True)
    run_queue()
    assert results(request)["Enrollment"] == (100, 1, StepStatus.YELLOW)
    add(district, "Enrollment", 101, {"PersonIdentity": 1}, excluded=True)
    request = resync(district, ["Enrollment"], check_dependencies=True)
    run_queue()
    assert results(request)["Enrollment"] == (101, 2, StepStatus.RED)
    request.refresh_from_db()
    assert request.outcome == "red"


@COMMITTED
def test_it_errors_children_whose_parent_never_reached_the_state(district, queue):
    chain(district)
    add(district, "Enrollment", 1, {"PersonIdentity": 1})
    request = resync(district, ["Enrollment"])  # no Check Dependencies, nothing synced before
    run_queue()
    assert results(request) == {"Enrollment": (1, 1, StepStatus.RED)}
    error = ErrorLog.objects.get()
    assert (error.reason, error.record_id) == (Reason.PARENT_MISSING, 1)
    assert "PersonIdentity 1 is not at the state" in error.message
    assert not StateRecord.objects.filter(sync_object="Enrollment").exists()


@COMMITTED
def test_it_adds_and_runs_the_parents_with_check_dependencies(district, queue):
    chain(district)
    add(district, "Enrollment", 1, {"PersonIdentity": 1})
    request = resync(district, ["Enrollment"], check_dependencies=True)
    run_queue()
    got = results(request)
    assert (
        list(got)
        == ["District", "School", "Calendar", "ScheduleStructure", "PersonIdentity", "Enrollment"][::-1]
    )
    assert all(v == (1, 0, StepStatus.GREEN) for v in got.values())
    steps = DISBatchHistory.objects.filter(request=request).order_by("started_at")
    assert [s.sync_object.name for s in steps] == list(got)[::-1]  # parents ran first
    assert StateRecord.objects.filter(sync_object="Enrollment", record_id=1).exists()


@COMMITTED
def test_it_removes_at_the_state_what_the_district_deleted(district, queue):
    chain(district)
    for i in range(1, 6):
        add(district, "Enrollment", i, {"PersonIdentity": 1})
    resync(district, ["Enrollment"], check_dependencies=True)
    run_queue()
    DistrictRecord.objects.filter(sync_object__name="Enrollment", record_id__in=[2, 4]).delete()
    DistrictRecord.objects.filter(sync_object__name="Enrollment", record_id=5).update(state_excluded=True)
    resync(district, ["Enrollment"])
    run_queue()
    ids = set(StateRecord.objects.filter(sync_object="Enrollment").values_list("record_id", flat=True))
    assert ids == {1, 3}  # deleted ones gone, and the one now excluded too


@COMMITTED
def test_it_keeps_other_districts_and_years_apart(district, other_district, queue):
    chain(district)
    chain(other_district)
    add(district, "Calendar", 9, {"School": 1}, year=2028)
    resync(district, ["District", "School", "Calendar"])
    run_queue()
    resync(other_district, ["District"])
    run_queue()
    assert StateRecord.objects.filter(district_code=district.code, sync_object="District").count() == 1
    assert StateRecord.objects.filter(district_code=other_district.code).count() == 1
    # The 2028 calendar is out of this 2027 resync and stays untouched at the district.
    assert not StateRecord.objects.filter(sync_object="Calendar", school_year=2028).exists()
    resync(district, ["Calendar"], year=2028)
    run_queue()
    assert set(StateRecord.objects.filter(sync_object="Calendar").values_list("school_year", flat=True)) == {
        2027,
        2028,
    }


@COMMITTED
def test_it_runs_one_request_per_district_and_year_at_a_time(district, queue):
    chain(district)
    first = resync(district, ["District", "School"])
    second = resync(district, ["District"])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (ResyncRequest.Status.RUNNING, ResyncRequest.Status.WAITING)
    assert len(queue) == 1  # only the first request's first layer is queued
    run_queue()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == ResyncRequest.Status.FINISHED
    assert second.started_at >= first.finished_at  # not interleaved
    assert DISBatchHistory.objects.filter(request=second).get().attempts == 1  # run once


@COMMITTED
def test_it_keeps_every_request_in_history(district, queue):
    chain(district)
    for _ in range(3):
        resync(district, ["District"])
        run_queue()
    rows = DISBatchHistory.objects.filter(district=district, sync_object__name="District")
    assert rows.count() == 3
    assert all(r.started_at and r.ended_at and r.status == StepStatus.GREEN for r in rows)


@COMMITTED
def test_it_runs_children_after_a_failed_step_and_ends_red(district, queue, monkeypatch):
    chain(district)
    add(district, "Enrollment", 1, {"PersonIdentity": 1})
    real = lifecycle.move_records

    def explode(step, on_progress=None, catalog=None):
        if step.sync_object.name == "PersonIdentity":
            raise RuntimeError("disk on fire")
        return real(step, on_progress, catalog)

    monkeypatch.setattr(lifecycle, "move_records", explode)
    request = resync(district, ["PersonIdentity", "Enrollment"])
    run_queue()
    request.refresh_from_db()
    step = DISBatchHistory.objects.get(request=request, sync_object__name="PersonIdentity")
    assert step.status == StepStatus.FAILED and "disk on fire" in step.message
    assert results(request)["Enrollment"] == (1, 1, StepStatus.RED)  # orphaned child errors
    assert (request.status, request.outcome) == (ResyncRequest.Status.FINISHED, "red")


def test_it_refuses_bad_requests_with_a_message_naming_the_problem(district):
    with pytest.raises(ResyncError, match="Unknown sync object.*Nonsense"):
        actions.check_resync(district, None, ["Nonsense"], False)
    with pytest.raises(ResyncError, match="School year 2020 is not configured for district 101"):
        actions.check_resync(district, 2020, None, False)
    with pytest.raises(ResyncError, match="Not offered for district 101 in 2028: District"):
        actions.check_resync(district, 2028, ["District"], False)  # not tied to a year
    with pytest.raises(ResyncError, match="Not offered.*AttendanceSDMinute"):
        actions.check_resync(district, None, ["AttendanceSDMinute"], False)  # another edition
    with pytest.raises(ResyncError, match="at least one"):
        actions.check_resync(district, None, [], False)
    assert not ResyncRequest.objects.exists()


def test_it_offers_only_the_districts_edition(district):
    plan = actions.check_resync(district, None, None, False).plan
    names = Counter(n[-2:] for n in plan.order)
    assert "LEPKY" in plan.order and "AttendanceSDMinute" not in plan.order
    assert "CTEDataME" not in plan.order and "NASIS" not in plan.order
    assert names["KY"] > 0


@COMMITTED
def test_it_runs_from_the_command_and_fails_on_red(demo_district, queue, capsys):
    from django.core.management import CommandError, call_command

    district, expected = demo_district
    with pytest.raises(CommandError, match="finished red"):
        call_command("resync_run", "--district", district.code, "--all", "--work")
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("TestScore "))
    assert row.split()[1:] == [
        f"{expected.processed['TestScore']:,}",
        f"{expected.errors['TestScore']:,}",
        "Red",
    ]
    assert "Overall: Red" in out


@COMMITTED
def test_it_exits_cleanly_when_all_is_green(district, queue, capsys):
    from django.core.management import call_command

    chain(district)
    call_command(
        "resync_run", "--district", district.code, "PersonIdentity", "--check-dependencies", "--work"
    )
    out = capsys.readouterr().out
    assert "PersonIdentity                          1        0  Green" in out
    assert "Overall: Green" in out


def test_it_refuses_an_unknown_district_from_the_command(catalog):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No district with code '999'"):
        call_command("resync_run", "--district", "999", "--all")


@COMMITTED
def test_it_counts_nothing_of_a_step_that_failed_half_way(
    district, queue, monkeypatch, settings, python_path
):
    chain(district)
    add(district, "PersonIdentity", 2, {"ScheduleStructure": 1}, excluded=True)
    add(district, "PersonIdentity", 3, {"ScheduleStructure": 1})
    resync(district, ["PersonIdentity"], check_dependencies=True)
    run_queue()
    assert StateRecord.objects.filter(sync_object="PersonIdentity").count() == 2
    settings.RESYNC_CHUNK = 1
    real, calls = engine.context, []

    def fail_on_second_chunk(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("connection lost")
        return real(*args)

    monkeypatch.setattr(engine, "context", fail_on_second_chunk)
    DistrictRecord.objects.filter(sync_object__name="PersonIdentity", record_id=1).delete()
    request = resync(district, ["PersonIdentity"])
    run_queue()
    step = DISBatchHistory.objects.get(request=request)
    assert len(calls) == 2  # one chunk was judged (its error logged) before the failure
    assert (step.status, step.processed, step.errors) == (StepStatus.FAILED, 0, 0)
    assert not ErrorLog.objects.filter(step=step).exists()
    # The state is as it was: the deletion of record 1 was rolled back with the rest.
    assert set(
        StateRecord.objects.filter(sync_object="PersonIdentity").values_list("record_id", flat=True)
    ) == {
        1,
        3,
    }


@COMMITTED
def test_it_finishes_the_steps_of_objects_with_nothing_to_move_without_a_job(district, queue):
    chain(district)
    request = resync(district, ["District", "VaccineShot", "Behavior"])  # the last two have no records
    steps = {s.sync_object.name: s for s in DISBatchHistory.objects.filter(request=request)}
    assert queue.job_ids == [lifecycle.step_job_id(steps["District"].pk)]
    run_queue()
    for name in ("VaccineShot", "Behavior"):
        steps[name].refresh_from_db()
        step = steps[name]
        assert (step.status, step.processed, step.errors, step.attempts) == (StepStatus.GREEN, 0, 0, 0)
        assert step.queued_at is None and step.started_at <= step.ended_at  # never queued, no worker took it
    request.refresh_from_db()
    assert (request.status, request.outcome) == (ResyncRequest.Status.FINISHED, "green")
    assert results(request)["District"] == (1, 0, StepStatus.GREEN)


@COMMITTED
def test_it_finishes_a_request_with_nothing_to_move_at_once(district, queue):
    request = resync(district, ["CourseCode", "District", "School"])  # three layers, all empty
    request.refresh_from_db()
    assert queue.job_ids == []
    assert (request.status, request.outcome) == (ResyncRequest.Status.FINISHED, "green")
    assert set(results(request).values()) == {(0, 0, StepStatus.GREEN)}


@COMMITTED
def test_it_still_runs_the_step_of_an_object_the_district_emptied(district, queue):
    chain(district)
    resync(district, ["District", "VaccineShot"])
    add(district, "VaccineShot", 1, {"PersonIdentity": 1})
    resync(district, ["PersonIdentity", "VaccineShot"], check_dependencies=True)
    run_queue()
    assert StateRecord.objects.filter(sync_object="VaccineShot").count() == 1
    DistrictRecord.objects.filter(sync_object__name="VaccineShot").delete()

    request = resync(district, ["VaccineShot"])  # nothing at the district, one row at the state
    assert len(queue.job_ids) == 1
    run_queue()
    assert results(request) == {"VaccineShot": (0, 0, StepStatus.GREEN)}
    assert not StateRecord.objects.filter(sync_object="VaccineShot").exists()


@COMMITTED
def test_it_errors_each_malformed_record_on_its_own_and_sends_the_rest(district, queue):
    """Issue 11, item 9: one Day whose parent id was "abc" failed the whole Day step."""
    chain(district)
    for rid in range(1, 62):
        add(district, "Day", rid, {"ScheduleStructure": 1}, {"date": f"2026-09-{rid % 28 + 1:02}"})
    malformed = {
        62: ({"ScheduleStructure": "abc"}, {}),
        63: ({"ScheduleStructure": 1.5}, {}),
        64: ({"ScheduleStructure": True}, {}),
        65: ({"ScheduleStructure": [1]}, {}),
        66: ({"ScheduleStructure": 2**70}, {}),
        67: (["ScheduleStructure", 1], {}),
        68: ({"ScheduleStructure": 1}, [1, 2]),
    }
    for rid, (parents, payload) in malformed.items():
        add(district, "Day", rid, parents, payload)
    # Scores: one good; the others each malformed in one field. The undated one that
    # is no object must not block its test (test_no_date) for the good one.
    good_test = {"state_code": "KPREP", "published": True, "end_year": 2027}
    add(district, "Test", 1, {"PersonIdentity": 1}, good_test)
    add(district, "Enrollment", 1, {"PersonIdentity": 1}, {"end_date": None})
    scores = {
        1: ({"PersonIdentity": 1, "Test": 1}, {"date": "2026-10-01"}),
        2: ({"PersonIdentity": 1, "Test": "abc"}, {"date": "2026-10-01"}),
        3: ({"PersonIdentity": 1, "Test": 1}, {"date": 20261001}),
        4: ({"PersonIdentity": "x", "Test": 1}, {"date": "2026-10-01"}),
        5: ({"PersonIdentity": 1, "Test": 1}, ["no", "date"]),
        6: ({"PersonIdentity": 1, "Test": 1}, {"date": "soon"}),
    }
    for rid, (parents, payload) in scores.items():
        add(district, "TestScore", rid, parents, payload)

    request = resync(district, ["Day", "TestScore"], check_dependencies=True)
    run_queue()
    got = results(request)
    assert got["Day"] == (68, 7, StepStatus.RED)
    assert got["TestScore"] == (6, 5, StepStatus.RED)
    request.refresh_from_db()
    assert request.status == ResyncRequest.Status.FINISHED
    day_errors = ErrorLog.objects.filter(step__request=request, sync_object__name="Day")
    assert set(day_errors.values_list("record_id", "reason")) == {(r, Reason.MALFORMED) for r in malformed}
    assert day_errors.get(record_id=62).message == (
        "Day 62: parent ScheduleStructure id 'abc' is not a whole number."
    )
    assert day_errors.get(record_id=68).message == "Day 68: payload [1, 2] is not a JSON object."
    score_errors = ErrorLog.objects.filter(step__request=request, sync_object__name="TestScore")
    assert set(score_errors.values_list("record_id", flat=True)) == {2, 3, 4, 5, 6}
    assert set(score_errors.values_list("reason", flat=True)) == {Reason.MALFORMED}
    sent = StateRecord.objects.filter(district_code=district.code)
    assert set(sent.filter(sync_object="Day").values_list("record_id", flat=True)) == set(range(1, 62))
    assert list(sent.filter(sync_object="TestScore").values_list("record_id", flat=True)) == [1]


@COMMITTED
def test_it_refuses_at_run_time_the_steps_of_a_requester_who_lost_the_right_and_logs_it(cast, queue, caplog):
    import logging

    from guardian.shortcuts import remove_perm

    from resync import rights

    bob = cast.bob  # may resync district A, Enrollment and PersonIdentity only
    chain(cast.district)  # PersonIdentity has a record (a job); Enrollment, a layer later, none (no job)
    checked = actions.check_resync(cast.district, None, ["PersonIdentity", "Enrollment"], False, user=bob)
    request = actions.do_request_resync(checked)
    steps = {s.sync_object.name: s for s in DISBatchHistory.objects.filter(request=request)}
    remove_perm(rights.DISTRICT, bob, cast.district)  # gone before its steps run
    with caplog.at_level(logging.WARNING, logger="statesync.refusals"):
        run_queue()
    logged = []
    for name in ("PersonIdentity", "Enrollment"):
        step = steps[name]
        step.refresh_from_db()
        assert step.status == StepStatus.FAILED
        assert step.message.startswith("Refused at run time: ")
        why = step.message.removeprefix("Refused at run time: ")
        logged.append(f"refused bob at job: step {step.pk} ({name}): {why}")
    assert [r.getMessage() for r in caplog.records if r.name == "statesync.refusals"] == logged
