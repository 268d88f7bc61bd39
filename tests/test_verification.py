"""The Verification Summary through the real path: actions -> RQ on the real Redis ->
compare both databases -> stored results, and the one-click resync back to zero."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from guardian.shortcuts import assign_perm

from alerts.models import AlertName, ProcessAlert
from core import timefmt
from core.errors import ResyncError, RightsError
from live.consumers import LiveConsumer
from resync import rights
from resync.models import DistrictRecord, ResyncRequest, StateRecord, SyncObject
from resync.rules import Reason
from tool import actions
from verification import actions as verify
from verification.models import (
    DISVerificationDifference,
    DISVerificationResult,
    VerificationRun,
    VerificationSetting,
)
from verification.rights import VERIFY_RUN

from .conftest import BOTH, COMMITTED, add, chain, run_queue
from .servers import start_worker

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the tests whose resyncs and verifications a worker runs, or a thread reads while one runs,
# and the migration test (SQLite's schema editor refuses to run inside a transaction).

Kind = DISVerificationDifference.Kind


def full_resync(district) -> None:
    actions.do_request_resync(actions.check_resync(district, None, None, False))
    run_queue()


def verification(district, objects=None, user=None) -> VerificationRun:
    run = verify.do_request_verification(verify.check_verification(district, None, objects, user))
    run_queue()
    run.refresh_from_db()
    assert run.status == VerificationRun.Status.FINISHED, run.message
    return run


def found(run) -> set[tuple]:
    """(object, record id, kind) of every difference a resync would fix."""
    rows = DISVerificationDifference.objects.filter(result__run=run).exclude(kind=Kind.NOT_ALLOWED)
    return set(rows.values_list("result__sync_object__name", "record_id", "kind"))


def counts(run) -> dict[str, tuple]:
    results = DISVerificationResult.objects.filter(run=run).select_related("sync_object")
    return {
        r.sync_object.name: (r.only_district, r.only_state, r.different, r.not_allowed, r.matching)
        for r in results
    }


@COMMITTED
def test_it_finds_only_the_planted_not_allowed_records_after_a_full_resync(demo_district, queue):
    district, expected = demo_district
    full_resync(district)
    run = verification(district)
    got = counts(run)
    offered = set(SyncObject.objects.offered(district, 2027).values_list("name", flat=True))
    assert set(got) == offered
    for obj, (only_d, only_s, different, not_allowed, matching) in got.items():
        assert (only_d, only_s, different) == (0, 0, 0), obj
        assert not_allowed == expected.errors[obj], obj
        assert matching == expected.processed[obj] - expected.errors[obj], obj
    assert found(run) == set()
    reasons = set(DISVerificationDifference.objects.filter(result__run=run).values_list("reason", flat=True))
    assert reasons == {
        Reason.STATE_EXCLUDED,
        Reason.TEST_NO_CODE,
        Reason.TEST_UNPUBLISHED,
        Reason.TEST_NO_DATE,
        Reason.OUT_OF_SCOPE,
        Reason.TEST_LOCKED,
        Reason.NOT_ENROLLED,
    }
    assert run.objects_done == len(offered)
    assert run.records_compared == DistrictRecord.objects.filter(district=district).count()


@COMMITTED
def test_it_reports_exactly_what_changed_and_the_one_click_resync_brings_it_to_zero(demo_district, queue):
    district, expected = demo_district
    full_resync(district)
    records = DistrictRecord.objects.filter(district=district, state_excluded=False)
    want = set()
    for obj in ("VaccineShot", "ContactLog"):  # deleted at the district: still at the state
        for r in records.filter(sync_object__name=obj).order_by("record_id")[:2]:
            want.add((obj, r.record_id, Kind.ONLY_STATE))
            r.delete()
    enrollments = records.filter(sync_object__name="Enrollment").order_by("-record_id")[:3]
    for e in enrollments:  # changed payloads
        DistrictRecord.objects.filter(pk=e.pk).update(payload={**e.payload, "grade": "KG"})
        want.add(("Enrollment", e.record_id, Kind.DIFFERENT))
    person = records.filter(sync_object__name="PersonIdentity").order_by("record_id").first()
    other = (
        records.filter(sync_object__name="ScheduleStructure")
        .exclude(record_id=person.parent_ids["ScheduleStructure"])
        .first()
    )
    DistrictRecord.objects.filter(pk=person.pk).update(parent_ids={"ScheduleStructure": other.record_id})
    want.add(("PersonIdentity", person.record_id, Kind.DIFFERENT))
    top = expected.processed
    add(
        district,
        "Enrollment",
        top["Enrollment"] + 1,
        {"PersonIdentity": person.record_id},
        {"grade": "09", "end_date": None},
    )
    add(district, "Behavior", top["Behavior"] + 1, {"PersonIdentity": person.record_id}, {"note": "new"})
    want |= {
        ("Enrollment", top["Enrollment"] + 1, Kind.ONLY_DISTRICT),
        ("Behavior", top["Behavior"] + 1, Kind.ONLY_DISTRICT),
    }

    run = verification(district)
    assert found(run) == want
    changed = {o for o, _r, _k in want}
    for obj, (only_d, only_s, different, not_allowed, _m) in counts(run).items():
        assert not_allowed == expected.errors[obj], obj  # not-allowed records stay apart
        assert (only_d + only_s + different > 0) == (obj in changed), obj

    checked = verify.check_verification_resync(run)
    assert set(checked.objects) == changed and checked.check_dependencies
    assert {"District", "School", "Calendar", "ScheduleStructure"} <= set(checked.plan.added)
    request = verify.do_verification_resync(run, checked)
    run_queue()
    request.refresh_from_db()
    assert request.status == "finished"
    assert VerificationRun.objects.get(pk=run.pk).resync_request == request

    again = verification(district)
    assert found(again) == set()
    assert all(c[:3] == (0, 0, 0) for c in counts(again).values())
    assert {o: c[3] for o, c in counts(again).items()} == {o: c[3] for o, c in counts(run).items()}


@COMMITTED
def test_it_pages_both_sides_in_chunks_with_the_same_answer(district, queue, settings):
    chain(district)
    for i in range(1, 24):
        add(district, "Enrollment", i, {"PersonIdentity": 1}, {"n": i}, excluded=i == 5)
    actions.do_request_resync(actions.check_resync(district, None, ["Enrollment"], True))
    run_queue()
    DistrictRecord.objects.filter(sync_object__name="Enrollment", record_id__in=[3, 9, 21]).delete()
    DistrictRecord.objects.filter(sync_object__name="Enrollment", record_id=12).update(payload={"n": 0})
    for i in (24, 25, 26, 27):
        add(district, "Enrollment", i, {"PersonIdentity": 1})
    settings.RESYNC_CHUNK = 3  # every page boundary falls inside the data, on both sides
    small = verification(district, ["Enrollment"])
    settings.RESYNC_CHUNK = 2000
    whole = verification(district, ["Enrollment"])
    assert counts(small) == counts(whole) == {"Enrollment": (4, 3, 1, 1, 18)}
    assert (
        found(small)
        == found(whole)
        == {
            *(("Enrollment", i, Kind.ONLY_STATE) for i in (3, 9, 21)),
            ("Enrollment", 12, Kind.DIFFERENT),
            *(("Enrollment", i, Kind.ONLY_DISTRICT) for i in (24, 25, 26, 27)),
        }
    )


@COMMITTED
def test_it_tells_a_missing_parent_and_a_changed_record_from_a_refused_one(demo_district, queue):
    district, _expected = demo_district
    chain_objects = ["District", "School", "Calendar", "ScheduleStructure"]
    actions.do_request_resync(actions.check_resync(district, None, chain_objects + ["Enrollment"], False))
    run_queue()  # no PersonIdentity at the state: every enrollment errors parent_missing
    excluded = DistrictRecord.objects.filter(
        district=district, sync_object__name="Enrollment", state_excluded=True
    ).first()
    run = verification(district, ["Enrollment"])
    rows = DISVerificationDifference.objects.filter(result__run=run)
    assert set(rows.values_list("kind", "reason")) == {
        (Kind.ONLY_DISTRICT, Reason.PARENT_MISSING),  # a failure a resync fixes: not "not allowed"
        (Kind.NOT_ALLOWED, Reason.STATE_EXCLUDED),
    }
    assert rows.get(record_id=excluded.record_id).kind == Kind.NOT_ALLOWED

    full_resync(district)
    refused = DistrictRecord.objects.get(
        district=district,
        sync_object__name="TestScore",
        record_id=DISVerificationDifference.objects.filter(
            result__run=verification(district, ["TestScore"]), reason=Reason.TEST_LOCKED
        ).values_list("record_id", flat=True)[:1],
    )
    refused.payload = {**refused.payload, "score": 1}
    refused.save()  # changed since the resync refused it: it may now pass, so it is a difference
    again = DISVerificationDifference.objects.filter(result__run=verification(district, ["TestScore"]))
    assert again.get(record_id=refused.record_id).kind == Kind.ONLY_DISTRICT
    assert again.get(record_id=refused.record_id).reason == Reason.TEST_LOCKED


@COMMITTED
def test_it_shows_a_state_excluded_record_still_at_the_state_as_different(district, queue):
    chain(district)
    add(district, "Enrollment", 1, {"PersonIdentity": 1})
    actions.do_request_resync(actions.check_resync(district, None, ["Enrollment"], True))
    run_queue()
    DistrictRecord.objects.filter(sync_object__name="Enrollment").update(state_excluded=True)
    run = verification(district, ["Enrollment"])
    row = DISVerificationDifference.objects.get(result__run=run)
    assert (row.kind, row.reason, row.detail) == (
        Kind.DIFFERENT,
        Reason.STATE_EXCLUDED,
        "state-excluded, yet at the state",
    )


@COMMITTED
def test_it_alerts_the_requester_when_done(tool_cast, queue):
    chain(tool_cast.district)
    run = verification(tool_cast.district, ["District"], user=tool_cast.alice)
    alert = ProcessAlert.objects.get(user=tool_cast.alice, name="Verification Finished")
    # Named by district, year and time, not by ids (issue 14, item 8).
    started = timefmt.when(run.created_at, tool_cast.district)
    assert (
        alert.message
        == f"Verification of 101 Adair County for 2026-2027, started {started}, finished: 1 difference(s) to resync."
    )
    assert alert.link == f"/admin/verification/verificationrun/{run.pk}/change/"


def test_it_refuses_what_it_cannot_compare_naming_it(tool_cast, queue):
    a = tool_cast.district
    with pytest.raises(
        ResyncError, match="School year 2020 is not configured for district 101: choose 2027, 2028."
    ):
        verify.check_verification(a, 2020, None, tool_cast.alice)
    with pytest.raises(ResyncError, match=r"Unknown sync object\(s\): Nope."):
        verify.check_verification(a, None, ["Nope"], tool_cast.alice)
    with pytest.raises(ResyncError, match="Not offered for district 101 in 2028: District."):
        verify.check_verification(a, 2028, ["District"], tool_cast.alice)
    chain(a)
    actions.do_request_resync(actions.check_resync(a, None, ["District"], False))  # queued, not run
    with pytest.raises(ResyncError, match="A resync of district 101 for 2027 is under way"):
        verify.check_verification(a, None, None, tool_cast.alice)
    assert not VerificationRun.objects.exists()


def test_it_lets_only_users_with_rights_verify(tool_cast, queue):
    a, b = tool_cast.district, tool_cast.other
    with pytest.raises(RightsError, match="You have no right to verify district 101."):
        verify.check_verification(a, None, None, tool_cast.charlie)
    with pytest.raises(RightsError, match="Verification Summary W"):
        verify.check_verification(a, None, None, tool_cast.bob)
    # Bob may resync two objects only: he verifies those two, and is refused the others by name.
    assign_perm(VERIFY_RUN, tool_cast.bob)
    bob = type(tool_cast.bob).objects.get(pk=tool_cast.bob.pk)
    assert verify.check_verification(a, None, None, bob).objects == ["PersonIdentity", "Enrollment"]
    with pytest.raises(RightsError, match="You have no tool right to verify District, School."):
        verify.check_verification(a, None, ["District", "School", "Enrollment"], bob)
    assert verify.check_verification(b, None, ["District"], tool_cast.stella).objects == ["District"]


def test_it_lets_the_state_switch_district_initiated_verification_off(tool_cast, queue):
    setting = VerificationSetting.current()
    setting.district_initiated = False
    setting.save()
    with pytest.raises(RightsError, match="The state has switched district-initiated verification off."):
        verify.check_verification(tool_cast.district, None, None, tool_cast.alice)
    assert verify.check_verification(tool_cast.district, None, ["District"], tool_cast.stella).objects == [
        "District"
    ]


@COMMITTED
def test_it_checks_the_requester_again_when_the_job_runs(tool_cast, queue):
    chain(tool_cast.district)
    run = verify.do_request_verification(
        verify.check_verification(tool_cast.district, None, ["District"], tool_cast.alice)
    )
    setting = VerificationSetting.current()
    setting.district_initiated = False
    setting.save()
    run_queue()
    run.refresh_from_db()
    assert run.status == VerificationRun.Status.FAILED
    assert run.message == "Refused at run time: The state has switched district-initiated verification off."
    assert not DISVerificationResult.objects.exists()


@COMMITTED
def test_it_sends_no_resync_when_nothing_differs(demo_district, queue):
    district, _ = demo_district
    full_resync(district)
    run = verification(district, ["Calendar", "Enrollment"])  # only not-allowed records differ
    with pytest.raises(ResyncError, match=f"Verification {run.pk} found nothing a resync would fix."):
        verify.check_verification_resync(run)
    assert ResyncRequest.objects.count() == 1


@COMMITTED
def test_it_compares_json_values_not_their_spelling(district, queue):
    chain(district)
    add(district, "Enrollment", 1, {"PersonIdentity": 1}, {"grade": "09", "end_date": None})
    add(district, "Enrollment", 2, {"PersonIdentity": 1}, {"grade": "10", "end_date": None})
    actions.do_request_resync(actions.check_resync(district, None, ["Enrollment"], True))
    run_queue()
    state = StateRecord.objects.filter(sync_object="Enrollment")
    state.filter(record_id=1).update(payload={"end_date": None, "grade": "09"})  # same value, keys reordered
    state.filter(record_id=2).update(payload={"end_date": None, "grade": 10})  # a number, not the text "10"
    run = verification(district, ["Enrollment"])
    assert counts(run) == {"Enrollment": (0, 0, 1, 0, 1)}
    assert found(run) == {("Enrollment", 2, Kind.DIFFERENT)}


def scored(district) -> None:
    """chain() plus a test without a code and two scores of it: every score is refused
    test_no_code at every resync (a Test Scores Batch Sync Requirement)."""
    chain(district)
    add(district, "Test", 1, {"PersonIdentity": 1})
    for rid in (1, 2):
        add(district, "TestScore", rid, {"PersonIdentity": 1, "Test": 1}, {"score": rid})


@COMMITTED
def test_it_keeps_a_district_verifications_not_allowed_counts_through_a_state_request(tool_cast, queue):
    a, alice, stella = tool_cast.district, tool_cast.alice, tool_cast.stella
    scored(a)
    actions.do_request_resync(actions.check_resync(a, None, None, False, user=alice))
    run_queue()
    score = DistrictRecord.objects.get(district=a, sync_object__name="TestScore", record_id=2)
    score.payload = {"score": 20}
    score.save()  # changed since the district's resync refused it: it may pass now, so to resync
    before = verification(a, ["TestScore"], user=alice)
    assert before.level == ResyncRequest.Level.DISTRICT
    assert counts(before) == {"TestScore": (1, 0, 0, 1, 0)}

    # The state resyncs TestScore: its step refuses both scores again, after the change.
    state = actions.check_resync(a, None, ["TestScore"], False, user=stella, level=ResyncRequest.Level.STATE)
    actions.do_request_resync(state)
    run_queue()
    after = verification(a, ["TestScore"], user=alice)
    assert counts(after) == counts(before)  # the state's Error Log is not the district's to read
    assert set(
        DISVerificationDifference.objects.filter(result__run=after).values_list("record_id", "kind")
    ) == {
        (1, Kind.NOT_ALLOWED),
        (2, Kind.ONLY_DISTRICT),
    }
    own = verification(a, ["TestScore"], user=stella)
    assert own.level == ResyncRequest.Level.STATE
    assert counts(own) == {"TestScore": (0, 0, 0, 2, 0)}  # the state reads its own step

    # The same two verifications on a real worker process: it reads each run's level from its row.
    runs = [
        verify.do_request_verification(verify.check_verification(a, None, ["TestScore"], user))
        for user in (alice, stella)
    ]
    worker = start_worker(burst=True)
    assert worker.wait(120) == 0
    for run in runs:
        run.refresh_from_db()
    assert [(r.status, r.level) for r in runs] == [("finished", "district"), ("finished", "state")]
    assert [counts(r) for r in runs] == [counts(before), counts(own)]


@COMMITTED
def test_it_makes_a_state_users_verification_the_states(tool_cast, queue):
    chain(tool_cast.district)
    state_run = verification(tool_cast.district, ["District"], user=tool_cast.stella)
    district_run = verification(tool_cast.district, ["District"], user=tool_cast.alice)
    system_run = verification(tool_cast.district, ["District"])  # an operator's: the district's own level
    assert [r.level for r in (state_run, district_run, system_run)] == ["state", "district", "district"]
    # Its alert goes to its requester only, as any run's.
    finished = ProcessAlert.objects.filter(name=AlertName.VERIFICATION_FINISHED)
    assert set(finished.values_list("user__username", flat=True)) == {"stella", "alice"}
    started = timefmt.when(district_run.created_at, tool_cast.district)
    assert f"started {started}," in finished.filter(user=tool_cast.alice).get().message


@COMMITTED
def test_it_resyncs_a_state_runs_differences_as_a_state_request_even_for_the_system(tool_cast, queue):
    chain(tool_cast.district)
    run = verification(tool_cast.district, ["District"], user=tool_cast.stella)
    request = verify.do_verification_resync(run, verify.check_verification_resync(run))
    assert request.level == ResyncRequest.Level.STATE


@COMMITTED
def test_it_pushes_a_state_run_to_the_states_verification_group_only_over_real_redis(tool_cast, queue):
    chain(tool_cast.district)

    async def listen(users, work):
        """Open one real socket (the configured Redis layer) per user, do `work`, and
        return every verification push each heard, by username."""
        sockets = {}
        for user in users:
            socket = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
            socket.scope["user"] = user
            assert (await socket.connect())[0]
            assert (await socket.receive_json_from(timeout=5))["type"] == "alert.count"
            sockets[user.username] = socket
        await sync_to_async(work)()
        heard = {}
        for name, socket in sockets.items():
            got = []
            while not await socket.receive_nothing(timeout=0.5):
                got.append(await socket.receive_json_from())
            heard[name] = [(m["run"], m["status"]) for m in got if m["type"] == "verification.progress"]
            await socket.disconnect()
        return heard

    runs = []

    def work():
        for user in (tool_cast.stella, tool_cast.alice):
            checked = verify.check_verification(tool_cast.district, None, ["District"], user=user)
            runs.append(verify.do_request_verification(checked))
        while queue.count:  # here, in this thread: an RQ worker wants the main thread for signals
            job = queue.get_jobs()[0]
            queue.remove(job)
            job.perform()

    heard = async_to_sync(listen)([tool_cast.stella, tool_cast.alice], work)
    state_run, district_run = runs
    assert {run for run, _status in heard["stella"]} == {state_run.pk, district_run.pk}
    assert {run for run, _status in heard["alice"]} == {district_run.pk}
    assert (district_run.pk, "finished") in heard["alice"] and (state_run.pk, "finished") in heard["stella"]


@COMMITTED
def test_it_gives_existing_runs_their_requesters_level_when_migrating(tool_cast, back_to_the_latest):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    walt = type(tool_cast.stella).objects.create_user("walt", "walt@example.org", "pw")
    assign_perm(rights.STATE_SEND, walt)  # may send state requests, but not see them
    before, after = [("verification", "0003_run_recovery")], [("verification", "0004_run_level")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("verification", "VerificationRun")
    made = {
        who: old.objects.create(
            district_id=tool_cast.district.pk, school_year=2027, sync_objects=[], requested_by_id=uid
        )
        for who, uid in (
            ("stella", tool_cast.stella.pk),
            ("alice", tool_cast.alice.pk),
            ("walt", walt.pk),
            ("system", None),
        )
    }
    executor = MigrationExecutor(connection)  # reload: the graph's applied state changed
    executor.migrate(after)
    levels = dict(VerificationRun.objects.values_list("pk", "level"))
    assert {who: levels[run.pk] for who, run in made.items()} == {
        "stella": "state",  # a state administrator may send and see state requests: the state's run
        "alice": "district",
        "walt": "district",  # as resync.actions.level_for decides
        "system": "district",
    }
